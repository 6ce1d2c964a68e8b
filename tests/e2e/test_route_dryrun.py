"""The rules dry run on the real database: stored verified requests replayed through the
current rule file and a candidate, printed where they would have gone differently.

Needs the database only (marked ``integration``)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from shared.settings import CONFIG_DIR

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def stored(request_id: str, category: str, description: str, *steps: str) -> dict[str, Any]:
    at = datetime(2026, 1, 9, 14, 0, tzinfo=UTC)
    return {
        "_id": request_id,
        "request_id": request_id,
        "status": steps[-1],
        "category": category,
        "description": description,
        "contact": {"name": "王女士", "phone": "+8613800138000"},
        "location": {"district": "jinshui"},
        "special_groups": [],
        "timeline": [{"event_id": f"{request_id}-{s}", "status": s, "at": at} for s in steps],
    }


@pytest.fixture
async def database(mongodb_uri: str) -> AsyncIterator[str]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_uri, tz_aware=True)
    name = f"test_dryrun_{uuid.uuid4().hex[:10]}"
    await client[name]["requests"].insert_many(
        [
            stored("r-edu", "education", "孩子上网课没有电脑", "submitted", "verified"),
            stored("r-food", "food_supply", "家里没有吃的", "submitted", "verified", "dispatched"),
            stored("r-fever", "food_supply", "没有吃的，孩子发烧", "submitted", "verified"),
            stored("r-review", "education", "网课", "submitted", "needs_review"),
        ]
    )
    try:
        yield name
    finally:
        await client.drop_database(name)
        await client.close()


def dry_run(mongodb_uri: str, database: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MONGODB_URI": mongodb_uri, "MONGODB_DATABASE": database}
    return subprocess.run(
        [sys.executable, "-m", "services.route.dryrun", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_dry_run_prints_who_would_receive_what_differently(
    mongodb_uri: str, database: str, tmp_path: Path
) -> None:
    current = (CONFIG_DIR / "routing.toml").read_text(encoding="utf-8")
    candidate = tmp_path / "candidate.toml"
    changed = current.replace('education = "community"', 'education = "command"')
    candidate.write_text(
        changed.replace('version = "', 'version = "candidate-', 1), encoding="utf-8"
    )
    assert changed != current

    result = dry_run(mongodb_uri, database, "--rules", str(candidate))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[:-1] == [
        "r-edu  education  community -> command  rules default:education -> default:education"
    ]
    assert lines[-1].startswith("summary: 3 verified requests replayed, 1 routed differently")
    assert "-> candidate-" in lines[-1]
    assert "+86" not in result.stdout  # ids and departments only: no personal data
    assert "电脑" not in result.stdout

    limited = dry_run(mongodb_uri, database, "--rules", str(candidate), "--limit", "1")
    assert limited.returncode == 0, limited.stderr
    assert "summary: 1 verified requests replayed" in limited.stdout
