"""Verify's configuration: the jurisdiction (shared with every service), the verification rules
(``config/verify.toml``) and triage (``config/triage.toml``, shared with intake's fast lane),
read once at start-up by :func:`load_config`."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from shared.jurisdiction import District, Jurisdiction, load_jurisdiction
from shared.schemas import CATEGORIES
from shared.triage import KeywordRule, Triage, load_triage

__all__ = [
    "LOCATION_FIELDS",
    "Config",
    "District",
    "Jurisdiction",
    "KeywordRule",
    "Rules",
    "Triage",
    "load_config",
    "load_jurisdiction",
    "load_rules",
    "load_triage",
]

LOCATION_FIELDS = frozenset({"location", "district", "coordinates", "address", "name"})


@dataclass(frozen=True, slots=True)
class Rules:
    completeness: dict[str, tuple[str, ...]]
    contradiction_km: float
    repeated_min_length: int
    flood_max_requests: int
    flood_window: timedelta
    duplicate_window: timedelta
    duplicate_threshold: float
    min_partial_chars: int
    history_limit: int
    claim_ttl: timedelta
    review_list_limit: int


@dataclass(frozen=True, slots=True)
class Config:
    jurisdiction: Jurisdiction
    rules: Rules
    triage: Triage


def _read(path: Path) -> dict[str, Any]:
    return tomllib.loads(path.read_text(encoding="utf-8"))


def load_rules(path: Path) -> Rules:
    data = _read(path)
    completeness: dict[str, tuple[str, ...]] = {}
    for category, fields in data.get("completeness", {}).items():
        if category not in CATEGORIES:
            raise ValueError(f"{path}: unknown category {category!r} in [completeness]")
        unknown = set(fields) - LOCATION_FIELDS
        if unknown:
            raise ValueError(f"{path}: unknown fields {sorted(unknown)} for {category}")
        completeness[category] = tuple(fields)
    abuse, dup, review = data["abuse"], data["duplicates"], data.get("review", {})
    rules = Rules(
        completeness=completeness,
        contradiction_km=float(data.get("location", {}).get("contradiction_km", 15.0)),
        repeated_min_length=int(abuse.get("repeated_min_length", 3)),
        flood_max_requests=int(abuse["flood_max_requests"]),
        flood_window=timedelta(minutes=float(abuse["flood_window_minutes"])),
        duplicate_window=timedelta(hours=float(dup.get("window_hours", 24))),
        duplicate_threshold=float(dup["threshold"]),
        min_partial_chars=int(dup.get("min_partial_chars", 6)),
        history_limit=int(dup.get("history_limit", 20)),
        claim_ttl=timedelta(minutes=float(review.get("claim_minutes", 15))),
        review_list_limit=int(review.get("list_limit", 100)),
    )
    if rules.history_limit <= rules.flood_max_requests:
        raise ValueError(f"{path}: history_limit must exceed flood_max_requests")
    return rules


def load_config(
    config_dir: Path,
    *,
    jurisdiction_file: str = "jurisdiction.toml",
    rules_file: str = "verify.toml",
    triage_file: str = "triage.toml",
) -> Config:
    """The three files (a file name relative to ``config_dir``, or an absolute path)."""
    return Config(
        jurisdiction=load_jurisdiction(config_dir / jurisdiction_file),
        rules=load_rules(config_dir / rules_file),
        triage=load_triage(config_dir / triage_file),
    )
