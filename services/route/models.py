"""Route's records, typed: a ``Leg`` (one department's job for a request, with its state and
deadlines) and a ``Case`` (a request's legs, its cycle and what was announced for it).

The repository reads and writes them through ``from_document`` / ``to_document``; the rules
that read a leg or a case are methods here or pure functions in ``legs.py``. Both are frozen:
a change is a new value, returned by the repository method that stored it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from datetime import datetime
from typing import Any

from services.route import legs
from shared.db import Document, pack, unpack
from shared.schemas import DispatchJob
from shared.topics import Department


@dataclass(frozen=True, slots=True)
class Leg:
    """One stored dispatch leg (``_id`` = leg id)."""

    leg_id: str
    request_id: str
    department: Department
    team_id: str
    job: DispatchJob
    acknowledge_by: datetime
    resolve_by: datetime
    slot: str
    attempt: int = 1
    cycle: int = 0
    # False: an oversight job (the command centre watching a missed deadline), which blocks
    # nothing and is not the department's leg for a status event without a leg id.
    blocking: bool = True
    parent: str | None = None
    # False once another leg took the job over (re-routed or re-dispatched).
    current: bool = True
    # What the request's view shows (the progress, or escalated / redispatched).
    status: str = "dispatched"
    progress: str = "dispatched"
    last_occurred_at: datetime | None = None
    last_event_id: str | None = None
    applied_events: frozenset[str] = frozenset()
    breached: tuple[str, ...] = ()
    rejected_by: tuple[str, ...] = ()
    superseded_by: str | None = None
    published: bool = False
    dispatched_at: datetime | None = None
    counted: bool = False
    released: bool = False
    # In memory only, never stored: this processing created the leg, so it cannot have been
    # published yet. A stored leg without ``published`` may have been, by one that died.
    created_now: bool = field(default=False, compare=False)

    @classmethod
    def new(
        cls,
        job: DispatchJob,
        *,
        slot: str,
        cycle: int,
        blocking: bool = True,
        parent: str | None = None,
        counted: bool = False,
    ) -> Leg:
        """A leg about to be stored: its job, team and deadlines, nothing reported yet."""
        return cls(
            leg_id=job.leg_id,
            request_id=job.request_id,
            department=job.department,
            team_id=job.team_id,
            job=job,
            acknowledge_by=job.acknowledge_by,
            resolve_by=job.resolve_by,
            slot=slot,
            attempt=job.attempt,
            cycle=cycle,
            blocking=blocking,
            parent=parent,
            counted=counted,
        )

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> Leg:
        return cls(
            leg_id=str(doc["_id"]),
            request_id=str(doc["request_id"]),
            department=doc["department"],
            team_id=str(doc["team_id"]),
            job=DispatchJob.model_validate(unpack(doc["job"])),
            acknowledge_by=doc["acknowledge_by"],
            resolve_by=doc["resolve_by"],
            slot=str(doc.get("slot", doc["department"])),
            attempt=int(doc.get("attempt", 1)),
            cycle=int(doc.get("cycle", 0)),
            blocking=bool(doc.get("blocking", True)),
            parent=doc.get("parent"),
            current=bool(doc.get("current", True)),
            status=str(doc.get("status", "dispatched")),
            progress=str(doc.get("progress", "dispatched")),
            last_occurred_at=doc.get("last_occurred_at"),
            last_event_id=doc.get("last_event_id"),
            applied_events=frozenset(doc.get("applied_events") or ()),
            breached=tuple(doc.get("breached") or ()),
            rejected_by=tuple(doc.get("rejected_by") or ()),
            superseded_by=doc.get("superseded_by"),
            published=bool(doc.get("published", False)),
            dispatched_at=doc.get("dispatched_at"),
            counted=bool(doc.get("counted", False)),
            released=bool(doc.get("released", False)),
        )

    def to_document(self) -> Document:
        """The leg as stored: what identifies it, what its queries filter on (department and
        ``current``), its state and deadlines, and its job packed (read only whole; its
        priority also as a field, for the command centre). A field still at its default is
        left out (``from_document`` reads it back as the default; FerretDB's cost per insert
        follows the number of fields), and reports push its history onto it later."""
        doc: Document = {
            "_id": self.leg_id,
            "request_id": self.request_id,
            "department": self.department,
            "team_id": self.team_id,
            "current": self.current,
            "status": self.status,
            "progress": self.progress,
            "job": pack(self.job.model_dump(mode="json")),
            "priority": self.job.priority,
            "acknowledge_by": self.acknowledge_by,
            "resolve_by": self.resolve_by,
        }
        if self.slot != self.department:
            doc["slot"] = self.slot
        for name, default in _LEG_DEFAULTS.items():
            value = getattr(self, name)
            if value != default:
                doc[name] = (
                    sorted(value)
                    if isinstance(value, frozenset)
                    else list(value)
                    if isinstance(value, tuple)
                    else value
                )
        return doc

    def changed(self, **fields: Any) -> Leg:
        return replace(self, **fields)

    # ------------------------------------------------------------------------------ rules

    @property
    def open(self) -> bool:
        """Still the department's to work on: current and neither resolved nor rejected."""
        return self.current and self.progress not in legs.TERMINAL

    @property
    def role(self) -> str:
        return "work" if self.blocking else "oversight"

    def state(self) -> legs.LegState:
        """What the status state machine needs to know about the leg."""
        return legs.LegState(
            department=self.department,
            progress=self.progress,
            last_occurred_at=self.last_occurred_at,
            last_event_id=self.last_event_id,
            applied_events=self.applied_events,
            current=self.current,
        )

    def next_due(self, *, progress: str | None = None) -> datetime | None:
        """When the leg's next deadline falls due at ``progress`` (its own by default)."""
        return legs.next_due(
            progress=self.progress if progress is None else progress,
            acknowledge_by=self.acknowledge_by,
            resolve_by=self.resolve_by,
            breached=self.breached,
        )

    def summary(self) -> Document:
        """The leg in the request's ``legs`` summary (its public status view)."""
        return {
            "leg_id": self.leg_id,
            "department": self.department,
            "team_id": self.team_id,
            "status": self.status,
            "attempt": self.attempt,
            "current": self.current,
            "role": self.role,
        }


# The fields a leg is stored without while they hold the class's defaults (``current``,
# ``status`` and ``progress`` always stored: queries and operators read them; ``created_now``,
# compare=False, is never stored).
_LEG_DEFAULTS: dict[str, Any] = {
    f.name: f.default
    for f in fields(Leg)
    if f.default is not MISSING and f.compare and f.name not in ("current", "status", "progress")
}


@dataclass(frozen=True, slots=True)
class Case:
    """A request as route keeps it (``_id`` = request id)."""

    request_id: str
    leg_ids: tuple[str, ...] = ()
    # 0, and one more for each reopening.
    cycle: int = 0
    # ``"<cycle>:<level>"``: the request-level statuses already announced.
    emitted: tuple[str, ...] = ()
    reopens: tuple[str, ...] = ()
    # The reopen and close events done with.
    handled: frozenset[str] = frozenset()

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> Case:
        return cls(
            request_id=str(doc["_id"]),
            leg_ids=tuple(doc.get("leg_ids") or ()),
            cycle=int(doc.get("cycle", 0)),
            emitted=tuple(doc.get("emitted") or ()),
            reopens=tuple(doc.get("reopens") or ()),
            handled=frozenset(doc.get("handled") or ()),
        )

    def to_document(self) -> Document:
        return {
            "_id": self.request_id,
            "leg_ids": list(self.leg_ids),
            "cycle": self.cycle,
            "emitted": list(self.emitted),
            "reopens": list(self.reopens),
            "handled": sorted(self.handled),
        }

    def emitted_in(self, cycle: int) -> list[str]:
        """The request-level statuses announced in ``cycle``."""
        prefix = f"{cycle}:"
        return [key.split(":", 1)[1] for key in self.emitted if key.startswith(prefix)]

    def current_work(self, legs_of_case: list[Leg]) -> list[Leg]:
        """The legs the request's status adds up from: current work legs of this cycle."""
        return [
            leg for leg in legs_of_case if leg.current and leg.blocking and leg.cycle == self.cycle
        ]
