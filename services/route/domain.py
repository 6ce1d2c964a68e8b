"""Routing rules: pure functions from a verified request to its dispatch legs and deadlines."""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal, cast

from shared.envelope import derive_id
from shared.schemas import CATEGORIES, DispatchJob, Priority, SpecialGroup, VerifiedRequest
from shared.topics import DEPARTMENTS, Department

RuleMode = Literal["replace", "add"]


@dataclass(frozen=True, slots=True)
class ServiceLevel:
    acknowledge: timedelta
    resolve: timedelta


@dataclass(frozen=True, slots=True)
class Rule:
    """One row of the rule table; an empty condition matches everything."""

    id: str
    mode: RuleMode
    departments: tuple[Department, ...]
    categories: frozenset[str] = frozenset()
    keywords: tuple[str, ...] = ()
    special_groups: frozenset[str] = frozenset()
    districts: frozenset[str] = frozenset()

    def matches(self, request: RoutingInput) -> bool:
        if self.categories and request.category not in self.categories:
            return False
        if self.districts and (request.district or "") not in self.districts:
            return False
        if self.special_groups and not self.special_groups.intersection(request.special_groups):
            return False
        if self.keywords:
            text = request.description.casefold()
            if not any(word in text for word in self.keywords):
                return False
        return True


@dataclass(frozen=True, slots=True)
class Rules:
    version: str
    defaults: Mapping[str, Department]
    rules: tuple[Rule, ...] = ()
    reroute: Mapping[Department, Department] | None = None

    def next_department(self, department: Department) -> Department:
        """Where a rejected leg goes when its department has no other team to try."""
        return (self.reroute or {}).get(department, "command")


@dataclass(frozen=True, slots=True)
class RoutingInput:
    """What routing looks at: the same for a live request and a stored one (dry run)."""

    category: str
    description: str
    special_groups: tuple[str, ...] = ()
    district: str | None = None

    @classmethod
    def of(cls, request: VerifiedRequest) -> RoutingInput:
        return cls(
            category=request.category,
            description=request.description,
            special_groups=tuple(request.special_groups),
            district=request.location.district,
        )


@dataclass(frozen=True, slots=True)
class LegPlan:
    department: Department
    rule_id: str


# ---------------------------------------------------------------------------------- loading


def as_department(value: object, where: str) -> Department:
    for department in DEPARTMENTS:
        if value == department:
            return department
    raise ValueError(f"{where}: unknown department {value!r}")


def _strings(raw: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = raw.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{where}: {key} must be a list of strings")
    return tuple(value)


def table_rows(
    data: Mapping[str, Any], key: str, source: str
) -> Iterator[tuple[str, str, Mapping[str, Any]]]:
    """The rows of a TOML array of tables, each with where it stands and its id, which every
    row must have and no two rows may share."""
    seen: set[str] = set()
    for index, raw in enumerate(data.get(key, [])):
        where = f"{source} {key}[{index}]"
        row_id = str(raw.get("id", ""))
        if not row_id or row_id in seen:
            raise ValueError(f"{where}: missing or repeated id {row_id!r}")
        seen.add(row_id)
        yield where, row_id, raw


def parse_rules(data: Mapping[str, Any], *, source: str = "rules") -> Rules:
    """The rule table from parsed TOML; raises ValueError naming what is wrong."""
    defaults: dict[str, Department] = {}
    for category, department in data["defaults"].items():
        if category not in CATEGORIES:
            raise ValueError(f"{source}: unknown category {category!r}")
        defaults[category] = as_department(department, f"{source} [defaults].{category}")
    rules: list[Rule] = []
    for where, rule_id, raw in table_rows(data, "rules", source):
        mode = raw.get("mode", "replace")
        if mode not in ("replace", "add"):
            raise ValueError(f"{where}: mode must be 'replace' or 'add'")
        raw_departments = raw.get("departments") or [raw.get("department")]
        departments = tuple(as_department(d, where) for d in raw_departments)
        categories = _strings(raw, "categories", where)
        unknown = set(categories) - set(CATEGORIES)
        if unknown:
            raise ValueError(f"{where}: unknown categories {sorted(unknown)}")
        rules.append(
            Rule(
                id=rule_id,
                mode=cast(RuleMode, mode),
                departments=departments,
                categories=frozenset(categories),
                keywords=tuple(k.casefold() for k in _strings(raw, "keywords", where)),
                special_groups=frozenset(_strings(raw, "special_groups", where)),
                districts=frozenset(d.lower() for d in _strings(raw, "districts", where)),
            )
        )
    reroute = {
        as_department(k, f"{source} [reroute]"): as_department(v, f"{source} [reroute].{k}")
        for k, v in data.get("reroute", {}).items()
    }
    return Rules(
        version=str(data["version"]), defaults=defaults, rules=tuple(rules), reroute=reroute
    )


def load_rules(path: Path) -> Rules:
    return parse_rules(tomllib.loads(path.read_text(encoding="utf-8")), source=str(path))


def _duration(raw: Mapping[str, Any], what: str, where: str) -> timedelta:
    """``<what>_seconds`` if given, else ``<what>_minutes`` (fractions allowed)."""
    if f"{what}_seconds" in raw:
        value = float(raw[f"{what}_seconds"])
        delta = timedelta(seconds=value)
    else:
        value = float(raw[f"{what}_minutes"])
        delta = timedelta(minutes=value)
    if value <= 0:
        raise ValueError(f"{where}: {what} must be positive")
    return delta


def load_service_levels(path: Path) -> dict[Priority, ServiceLevel]:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    levels: dict[Priority, ServiceLevel] = {}
    priorities: tuple[Priority, ...] = ("P1", "P2", "P3", "P4")
    for priority in priorities:
        if priority not in data:
            raise ValueError(f"{path}: no service level for {priority}")
        raw = data[priority]
        levels[priority] = ServiceLevel(
            acknowledge=_duration(raw, "acknowledge", f"{path} [{priority}]"),
            resolve=_duration(raw, "resolve", f"{path} [{priority}]"),
        )
    return levels


# ---------------------------------------------------------------------------------- routing


def plan(request: RoutingInput | VerifiedRequest, rules: Rules) -> list[LegPlan]:
    """The departments a request goes to, in order, each with the rule that chose it."""
    subject = request if isinstance(request, RoutingInput) else RoutingInput.of(request)
    legs: list[LegPlan] = [
        LegPlan(rules.defaults.get(subject.category, "command"), f"default:{subject.category}")
    ]
    matching = [rule for rule in rules.rules if rule.matches(subject)]
    for rule in matching:
        if rule.mode == "replace":
            legs = [LegPlan(d, rule.id) for d in rule.departments]
            break
    for rule in matching:
        if rule.mode == "add":
            for department in rule.departments:
                if all(leg.department != department for leg in legs):
                    legs.append(LegPlan(department, rule.id))
    return legs


def departments_of(legs: Sequence[LegPlan]) -> list[str]:
    return sorted({leg.department for leg in legs})


# ---------------------------------------------------------------------------------- legs


def leg_id(request_id: str, slot: str, attempt: int = 1) -> str:
    """A leg's id: the request, the slot it fills (its first department, or an escalation
    kind) and the attempt, so a redelivered cause always yields the same leg."""
    return derive_id("leg", request_id, slot, str(attempt))


def deadlines(
    priority: Priority, levels: Mapping[Priority, ServiceLevel], at: datetime
) -> tuple[datetime, datetime]:
    """Acknowledge-by and resolve-by for a leg dispatched at ``at``."""
    level = levels[priority]
    return at + level.acknowledge, at + level.resolve


@dataclass(frozen=True, slots=True)
class JobFacts:
    """What every leg of one request shares (taken from the verified request)."""

    request_id: str
    priority: Priority
    green_channel: bool
    category: str
    description: str
    contact: dict[str, Any]
    location: dict[str, Any]
    special_groups: tuple[SpecialGroup, ...]
    language: str
    submitted_at: datetime

    @classmethod
    def of(cls, source: VerifiedRequest | DispatchJob) -> JobFacts:
        """From the verified request, or from an existing leg's job (re-route, escalation):
        both carry these fields under the same names."""
        return cls(
            request_id=source.request_id,
            priority=source.priority,
            green_channel=source.green_channel,
            category=source.category,
            description=source.description,
            contact=source.contact.model_dump(),
            location=source.location.model_dump(),
            special_groups=tuple(source.special_groups),
            language=source.language,
            submitted_at=source.submitted_at,
        )


def dispatch_job(
    facts: JobFacts,
    *,
    leg: str,
    department: Department,
    team_id: str,
    rule_version: str,
    rule_id: str,
    levels: Mapping[Priority, ServiceLevel],
    at: datetime,
    attempt: int = 1,
    reason: str | None = None,
) -> DispatchJob:
    """One leg's job: everything the team needs, with the deadlines of the priority."""
    acknowledge_by, resolve_by = deadlines(facts.priority, levels, at)
    return DispatchJob.model_validate(
        {
            "leg_id": leg,
            "request_id": facts.request_id,
            "department": department,
            "team_id": team_id,
            "priority": facts.priority,
            "green_channel": facts.green_channel,
            "category": facts.category,
            "description": facts.description,
            "contact": facts.contact,
            "location": facts.location,
            "special_groups": list(facts.special_groups),
            "language": facts.language,
            "submitted_at": facts.submitted_at,
            "dispatched_at": at,
            "acknowledge_by": acknowledge_by,
            "resolve_by": resolve_by,
            "rule_version": rule_version,
            "rule_id": rule_id,
            "attempt": attempt,
            "reason": reason,
        }
    )


# ---------------------------------------------------------------------------------- dry run


@dataclass(frozen=True, slots=True)
class Difference:
    """A stored request the candidate rules would route differently."""

    request_id: str
    category: str
    current: tuple[LegPlan, ...]
    candidate: tuple[LegPlan, ...]


def compare(
    current: Rules, candidate: Rules, requests: Iterable[tuple[str, RoutingInput]]
) -> tuple[int, list[Difference]]:
    """Replays requests through both rule tables: how many were compared, and which would
    reach other departments (or the same departments by other rules)."""
    compared = 0
    differences: list[Difference] = []
    for request_id, subject in requests:
        compared += 1
        before, after = plan(subject, current), plan(subject, candidate)
        if [(p.department, p.rule_id) for p in before] != [
            (p.department, p.rule_id) for p in after
        ]:
            differences.append(
                Difference(request_id, subject.category, tuple(before), tuple(after))
            )
    return compared, differences


def describe(difference: Difference) -> str:
    """One line of the dry run's report (no personal data: ids, categories, departments)."""

    def side(legs: Sequence[LegPlan]) -> tuple[str, str]:
        return ",".join(p.department for p in legs), ",".join(p.rule_id for p in legs)

    (dep_before, rules_before), (dep_after, rules_after) = (
        side(difference.current),
        side(difference.candidate),
    )
    return (
        f"{difference.request_id}  {difference.category}  {dep_before} -> {dep_after}"
        f"  rules {rules_before} -> {rules_after}"
    )
