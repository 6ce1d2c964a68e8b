"""The published contract, generated from the code (``make contracts``, ``tools/contracts.py``):

- ``contracts/schemas/<topic>.schema.json``: a JSON Schema (draft 2020-12) for the value of every
  topic, from the pydantic models in :mod:`shared.schemas` (:mod:`shared.contracts.values`);
- ``contracts/asyncapi.json``: an AsyncAPI 3.0 document for all topics — payloads, keys,
  CloudEvents headers, dead-letter headers, and which service sends or receives what (read from
  the apps' subscribers and publishers; :mod:`shared.contracts.asyncapi`);
- ``contracts/openapi/<service>.json``: the OpenAPI document of each service's HTTP app.

The apps come from the caller: shared/ never imports a service. Departmental systems and
partners in any language build on these files; a test regenerates them in memory and fails when
the committed files differ from the code.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shared.contracts.asyncapi import asyncapi, service_topics
from shared.contracts.values import topic_schemas
from shared.settings import REPO_ROOT

CONTRACTS_DIR = REPO_ROOT / "contracts"


def render(document: Mapping[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def documents(apps: Mapping[str, Any]) -> dict[str, str]:
    """Every generated file for the given HTTP apps (service → app, never started): path
    relative to ``contracts/`` → its text."""
    files = {
        f"schemas/{topic.value}.schema.json": render(schema)
        for topic, schema in topic_schemas().items()
    }
    files["asyncapi.json"] = render(asyncapi(service_topics(apps)))
    for service, app in apps.items():
        files[f"openapi/{service}.json"] = render(app.openapi())
    return files


def differences(wanted: Mapping[str, str], root: Path = CONTRACTS_DIR) -> list[str]:
    """Files under ``root`` that differ from ``wanted``: changed, missing or no longer generated."""
    problems = []
    for rel, text in sorted(wanted.items()):
        path = root / rel
        if not path.exists():
            problems.append(f"missing: contracts/{rel}")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"differs: contracts/{rel}")
    for path in sorted(root.rglob("*.json")) if root.exists() else []:
        rel = path.relative_to(root).as_posix()
        if rel not in wanted:
            problems.append(f"stale: contracts/{rel}")
    return problems


def write(wanted: Mapping[str, str], root: Path = CONTRACTS_DIR) -> list[str]:
    """Writes every file of ``wanted`` and removes stale ones; returns the paths written."""
    for path in sorted(root.rglob("*.json")) if root.exists() else []:
        if path.relative_to(root).as_posix() not in wanted:
            path.unlink()
    for rel, text in wanted.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return sorted(wanted)
