"""Routing rules: pure functions from a verified request to its dispatch legs."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import cast

from shared.envelope import derive_id
from shared.schemas import DispatchJob, Priority, VerifiedRequest
from shared.topics import DEPARTMENTS, Department


@dataclass(frozen=True, slots=True)
class ServiceLevel:
    acknowledge: timedelta
    resolve: timedelta


@dataclass(frozen=True, slots=True)
class Rules:
    version: str
    defaults: dict[str, Department]


@dataclass(frozen=True, slots=True)
class LegPlan:
    department: Department
    rule_id: str


def load_rules(path: Path) -> Rules:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    defaults: dict[str, Department] = {}
    for category, department in data["defaults"].items():
        if department not in DEPARTMENTS:
            raise ValueError(f"{path}: unknown department {department!r} for {category}")
        defaults[category] = cast(Department, department)
    return Rules(version=str(data["version"]), defaults=defaults)


def load_service_levels(path: Path) -> dict[Priority, ServiceLevel]:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    return {
        cast(Priority, p): ServiceLevel(
            acknowledge=timedelta(minutes=int(v["acknowledge_minutes"])),
            resolve=timedelta(minutes=int(v["resolve_minutes"])),
        )
        for p, v in data.items()
    }


def plan(request: VerifiedRequest, rules: Rules) -> list[LegPlan]:
    """The departments a request goes to, each with the rule that chose it."""
    department = rules.defaults.get(request.category, "command")
    return [LegPlan(department, f"default:{request.category}")]


def leg_id(request_id: str, department: Department, attempt: int = 1) -> str:
    return derive_id("leg", request_id, department, str(attempt))


def team_for(department: Department, district: str | None) -> str:
    return f"{department}-{district or 'city'}-1"


def dispatch_job(
    request: VerifiedRequest,
    leg: LegPlan,
    *,
    rules: Rules,
    levels: dict[Priority, ServiceLevel],
    at: datetime,
) -> DispatchJob:
    level = levels[request.priority]
    return DispatchJob(
        leg_id=leg_id(request.request_id, leg.department),
        request_id=request.request_id,
        department=leg.department,
        team_id=team_for(leg.department, request.location.district),
        priority=request.priority,
        green_channel=request.green_channel,
        category=request.category,
        description=request.description,
        contact=request.contact,
        location=request.location,
        special_groups=request.special_groups,
        language=request.language,
        submitted_at=request.submitted_at,
        dispatched_at=at,
        acknowledge_by=at + level.acknowledge,
        resolve_by=at + level.resolve,
        rule_version=rules.version,
        rule_id=leg.rule_id,
    )
