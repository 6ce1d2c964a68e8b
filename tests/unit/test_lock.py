"""The lock files pin what pyproject.toml pins (``make lock`` regenerates them); ``make setup``
and the image install from them, so a pin changed in one place only fails here."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tools import lockcheck

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


def test_every_pin_of_pyproject_is_the_locks_pin() -> None:
    assert lockcheck.problems(REPO) == []


def test_every_locked_requirement_is_pinned_and_hash_checked() -> None:
    for lock in (lockcheck.DEV_LOCK, lockcheck.RUNTIME_LOCK):
        text = lock.read_text(encoding="utf-8")
        requirements = [line for line in text.splitlines() if line[:1].isalnum()]
        assert requirements, lock.name
        for line in requirements:
            assert "==" in line, f"{lock.name}: {line}"
        # one hash line at least per requirement (uv writes them under it)
        assert text.count("--hash=sha256:") >= len(requirements)


def test_the_image_lock_holds_the_services_dependencies_only() -> None:
    runtime = lockcheck.lock_pins(lockcheck.RUNTIME_LOCK)
    dev_only = {"pytest", "mypy", "ruff", "hypothesis", "uv", "kubernetes-validate"}
    assert dev_only & set(runtime) == set()
    assert {"faststream", "aiokafka", "pymongo", "uvicorn"} <= set(runtime)


def test_a_pin_changed_in_pyproject_only_is_reported(tmp_path: Path) -> None:
    for name in ("pyproject.toml", "requirements.lock", "requirements-dev.lock"):
        shutil.copy(REPO / name, tmp_path / name)
    pyproject = tmp_path / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8")
    pinned = lockcheck.project_pins(pyproject)["pymongo"]
    pyproject.write_text(text.replace(f"pymongo=={pinned}", "pymongo==0.0.1"), encoding="utf-8")
    found = lockcheck.problems(tmp_path)
    assert f"requirements-dev.lock: pymongo==0.0.1 (lock: {pinned})" in found
    assert f"requirements.lock: pymongo==0.0.1 (lock: {pinned})" in found


def test_names_are_compared_in_their_canonical_form(tmp_path: Path) -> None:
    assert lockcheck.parse_pins(["Types_PyYAML[x]==1.0 ; python_version >= '3'"]) == {
        "types-pyyaml": "1.0"
    }
    with pytest.raises(ValueError, match="not pinned exactly"):
        lockcheck.project_pins(_pyproject_with(tmp_path, "httpx>=0.28"))


def _pyproject_with(folder: Path, requirement: str) -> Path:
    path = folder / "pyproject.toml"
    path.write_text(f'[project]\nname = "x"\ndependencies = ["{requirement}"]\n')
    return path
