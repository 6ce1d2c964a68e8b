"""The life of a leg after dispatch: its state machine, the request-level status derived from
its legs, where a rejected leg goes next, and which service-level deadlines are breached.
Pure functions, no I/O."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from services.route.domain import Rules
from services.route.teams import Directory, choose_team, other_team
from shared.topics import Department

Progress = Literal[
    "dispatched", "acknowledged", "in_progress", "needs_info", "resolved", "rejected"
]
Outcome = Literal["apply", "duplicate", "repeat", "stale", "backwards", "closed", "owned"]
BreachKind = Literal["acknowledge", "resolve"]
RequestLevel = Literal["dispatched", "acknowledged", "in_progress", "resolved"]

# A leg only ever moves up this ladder; in_progress and needs_info share a rung (a team may go
# back and forth between working and waiting for the citizen).
_RANK: dict[str, int] = {
    "dispatched": 0,
    "acknowledged": 1,
    "in_progress": 2,
    "needs_info": 2,
    "resolved": 3,
    "rejected": 3,
}
TERMINAL: frozenset[str] = frozenset({"resolved", "rejected"})
_REQUEST_RANK: dict[str, int] = {
    "dispatched": 0,
    "acknowledged": 1,
    "in_progress": 2,
    "resolved": 3,
}


@dataclass(frozen=True, slots=True)
class LegState:
    """What the state machine needs to know about a leg."""

    department: Department
    progress: str = "dispatched"
    last_occurred_at: datetime | None = None
    last_event_id: str | None = None
    applied_events: frozenset[str] = frozenset()
    # False once another leg took the job over (re-routed or re-dispatched).
    current: bool = True


def apply_status(state: LegState, *, event_id: str, status: str, occurred_at: datetime) -> Outcome:
    """Whether a department's status event changes the leg.

    ``apply``: the leg moves to ``status``. Anything else is recorded in the leg's history and
    changes nothing: ``duplicate`` (this event was applied already), ``repeat`` (the same status
    again), ``stale`` (older than the last applied event), ``backwards`` (e.g. acknowledged
    after resolved), ``closed`` (the leg is resolved or rejected, or another leg took the job
    over), ``owned`` (the command centre
    cannot reject a leg: it owns it).
    """
    if event_id in state.applied_events:
        return "duplicate"
    if event_id == state.last_event_id:
        return "apply"  # applied, but its effects may not all have happened: finish them
    if state.department == "command" and status == "rejected" and state.current:
        return "owned"
    if state.progress in TERMINAL or not state.current:
        return "closed"
    if state.last_occurred_at is not None and occurred_at < state.last_occurred_at:
        return "stale"
    current, new = _RANK[state.progress], _RANK[status]
    if new < current:
        return "backwards"
    if status == state.progress:
        return "repeat"
    return "apply"


def acknowledged(progress: str) -> bool:
    return _RANK[progress] >= 1


def request_level(progresses: Iterable[str]) -> RequestLevel | None:
    """The request's status from its current legs: resolved when every leg is; in progress
    once any leg is being worked on (or done); acknowledged once any leg is."""
    ranks = [_RANK[p] for p in progresses if p != "rejected"]
    if not ranks:
        return None
    if all(rank == 3 for rank in ranks):
        return "resolved"
    top = max(ranks)
    if top >= 2:
        return "in_progress"
    if top == 1:
        return "acknowledged"
    return "dispatched"


def lifecycle_step(level: RequestLevel | None, emitted: Collection[str]) -> RequestLevel | None:
    """The request-level status to announce, if it is further than any announced so far."""
    if level is None or level == "dispatched":
        return None
    highest = max((_REQUEST_RANK.get(s, -1) for s in emitted), default=-1)
    return level if _REQUEST_RANK[level] > highest else None


@dataclass(frozen=True, slots=True)
class Reroute:
    """Where a rejected leg goes: another team, the next department, or the command centre."""

    department: Department
    team_id: str
    attempt: int
    reason: Literal["reassigned", "next_department", "rejected_twice", "no_team_left"]

    @property
    def escalates(self) -> bool:
        return self.department == "command"


def reroute(
    *,
    department: Department,
    attempt: int,
    district: str | None,
    rejected_by: Collection[str],
    busy_departments: Collection[str],
    rules: Rules,
    directory: Directory,
    load: Mapping[str, int],
) -> Reroute | None:
    """The next owner of a rejected leg. A first rejection goes to another team of the same
    department, else to the next department of the rules; a second one to the command centre,
    which owns the leg from then on (None: a command leg is not re-routed)."""
    if department == "command":
        return None
    command = choose_team(directory, "command", district, load)
    if attempt >= 2:
        return Reroute("command", command.id, attempt + 1, "rejected_twice")
    team = other_team(directory, department, district, load, exclude=rejected_by)
    if team is not None:
        return Reroute(department, team.id, attempt + 1, "reassigned")
    following = rules.next_department(department)
    if following == "command" or following in busy_departments:
        return Reroute("command", command.id, attempt + 1, "no_team_left")
    team = choose_team(directory, following, district, load)
    return Reroute(following, team.id, attempt + 1, "next_department")


def due_breaches(
    *,
    now: datetime,
    progress: str,
    acknowledge_by: datetime,
    resolve_by: datetime,
    breached: Collection[str],
) -> list[BreachKind]:
    """The service-level breaches of a leg that are due now and not yet escalated."""
    kinds: list[BreachKind] = []
    if progress in TERMINAL:
        return kinds
    if now >= acknowledge_by and not acknowledged(progress) and "acknowledge" not in breached:
        kinds.append("acknowledge")
    if now >= resolve_by and "resolve" not in breached:
        kinds.append("resolve")
    return kinds


def next_due(
    *,
    progress: str,
    acknowledge_by: datetime,
    resolve_by: datetime,
    breached: Collection[str],
) -> datetime | None:
    """When the leg's timer must look again; None when no deadline is left to watch."""
    if progress in TERMINAL or "resolve" in breached:
        return None
    if not acknowledged(progress) and "acknowledge" not in breached:
        return acknowledge_by
    return resolve_by
