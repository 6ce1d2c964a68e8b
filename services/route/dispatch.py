"""Route's dispatch of verified requests, a batch at a time: decide every leg from memory,
then let the batch runner store and publish them.

For each verified request the plan holds its case (the guard: ``route_cases``, keyed by the
request id), which carries what the first dispatch adds to the request record (its
``dispatched`` transitions and leg summary, merged in by ``shared/requests_store``); one leg per
department with its timer (inserts keyed by the leg); the teams' open-leg counters (one
``$inc`` per team and batch); and one job per leg on its department's topic. A first leg's id
derives from the request and department (``domain.leg_id``), so status reports find it without
a lookup document (``leg_lookup`` holds only the legs that replaced one). Nothing on the hot
path updates the request record.
Teams are chosen from an in-memory view of their open legs, refreshed from the database every
few seconds, so a batch reads nothing. A request whose case exists already (a redelivery) goes
through the per-record path, :func:`services.route.handlers.handle_verified`, which finishes
what a crash left undone and publishes each leg at most once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial

from services.route import domain, timer_store
from services.route.models import Leg
from services.route.repository import CASES, LEGS, TEAMS
from services.route.teams import Directory, choose_team
from shared import requests_store
from shared.db import Document, pack
from shared.envelope import Envelope, utcnow
from shared.kafka import effect_id
from shared.metrics import END_TO_END_SECONDS, REQUESTS
from shared.plans import Event, Insert, Outcome, Plan, Update, Write, take_turns
from shared.schemas import DispatchJob, Priority, VerifiedRequest
from shared.stage import PermanentError, Record
from shared.topics import dispatch_topic

logger = logging.getLogger(__name__)


@dataclass
class TeamLoad:
    """Open legs per team as route last read them, plus the legs it dispatched since."""

    read: Callable[[], Awaitable[dict[str, int]]]
    max_age_seconds: float = 5.0
    _load: dict[str, int] = field(default_factory=dict)
    _read_at: float = float("-inf")

    async def current(self) -> dict[str, int]:
        """The load (read again once older than ``max_age_seconds``)."""
        if time.monotonic() - self._read_at > self.max_age_seconds:
            self._load = await self.read()
            self._read_at = time.monotonic()
        return self._load


@dataclass(frozen=True)
class DispatchRules:
    rules: domain.Rules
    levels: dict[Priority, domain.ServiceLevel]
    directory: Directory

    def first_job(
        self, facts: domain.JobFacts, leg: domain.LegPlan, *, load: dict[str, int], at: datetime
    ) -> DispatchJob:
        """A department's first job for a request, for the team the load favours; ``load``
        counts it, so the request's next leg and the next request see it."""
        district = facts.location.get("district")
        team = choose_team(self.directory, leg.department, district, load)
        load[team.id] = load.get(team.id, 0) + 1
        return domain.dispatch_job(
            facts,
            leg=domain.leg_id(facts.request_id, leg.department),
            department=leg.department,
            team_id=team.id,
            rule_version=self.rules.version,
            rule_id=leg.rule_id,
            levels=self.levels,
            at=at,
        )


async def plan_verified(
    records: Sequence[Record],
    *,
    rules: DispatchRules,
    load: TeamLoad,
    clock: Callable[[], datetime] = utcnow,
) -> list[Outcome]:
    """Plans for a batch of verified requests (one read of the team load at most)."""
    now = clock()
    current = await load.current()
    outcomes: list[Outcome] = []
    for index, record in enumerate(records):
        await take_turns(index)
        try:
            request = record.parse(VerifiedRequest)
        except PermanentError as exc:
            outcomes.append(exc)
            continue
        outcomes.append(
            dispatched(request, rules=rules, load=current, at=now, cause=record.envelope)
        )
    return outcomes


def dispatched(
    request: VerifiedRequest,
    *,
    rules: DispatchRules,
    load: dict[str, int],
    at: datetime,
    cause: Envelope | None,
) -> Plan:
    """The plan of one verified request's first dispatch; ``load`` counts the chosen teams."""
    facts = domain.JobFacts.of(request)
    legs = domain.plan(request, rules.rules)
    departments = domain.departments_of(legs)
    jobs: list[DispatchJob] = []
    writes: list[Write] = []
    for leg in legs:
        job = rules.first_job(facts, leg, load=load, at=at)
        jobs.append(job)
        writes.extend(_leg_writes(job))
    return Plan(
        guards=(Insert(CASES, case_document(request.request_id, jobs, departments)),),
        writes=tuple(writes),
        events=tuple(
            Event(
                dispatch_topic(job.department),
                job,
                key=job.request_id,
                name="leg.dispatched",
                event_id=effect_id("dispatch", job.leg_id),
                cause=cause,
            )
            for job in jobs
        ),
        done=partial(_count, request, jobs, at),
    )


def _leg_writes(job: DispatchJob) -> list[Write]:
    """The leg (counted on its team) and its timer, in the bucket of its acknowledge deadline
    (``timer_store``). No lookup document: the leg's id is the one derived from its request and
    department, which status reports fall back to."""
    return [
        Insert(LEGS, Leg.new(job, slot=job.department, cycle=0, counted=True).to_document()),
        Insert(
            timer_store.place(job.acknowledge_by, now=job.dispatched_at),
            timer_store.document(job.leg_id, job.request_id, job.acknowledge_by),
        ),
        Update(TEAMS, {"_id": job.team_id}, {"$inc": {"open_legs": 1}}),
    ]


def case_document(request_id: str, jobs: Sequence[DispatchJob], departments: list[str]) -> Document:
    """The request's case as its first dispatch creates it: its legs and its cycle, and what
    the dispatch adds to the request record (``requests_store.merged``), packed: one
    ``dispatched`` transition per leg and the leg summary. It is stored before the jobs go
    out, and the batch's offsets are committed only once they are acknowledged, so a stored
    ``dispatched`` is always followed by its jobs (a crash in between: the redelivery
    publishes them)."""
    return {
        "_id": request_id,
        "leg_ids": [job.leg_id for job in jobs],
        "cycle": 0,
        "emitted": [],
        "reopens": [],
        requests_store.DISPATCH: pack(_first_dispatch(jobs)),
        "departments": departments,
    }


def _first_dispatch(jobs: Sequence[DispatchJob]) -> Document:
    """A dispatch's transitions and leg summary, as the request record shows them."""
    return {
        "timeline": [
            requests_store.transition(
                event_id=effect_id("dispatch", job.leg_id),
                status="dispatched",
                at=job.dispatched_at,
                actor="route",
                reason=job.rule_id,  # a code: the request's timeline is public
                detail={
                    "department": job.department,
                    "team_id": job.team_id,
                    "leg_id": job.leg_id,
                },
            )
            for job in jobs
        ],
        "legs": [
            {
                "leg_id": job.leg_id,
                "department": job.department,
                "team_id": job.team_id,
                "status": "dispatched",
                "attempt": job.attempt,
                "current": True,
                "role": "work",
            }
            for job in jobs
        ],
    }


def _count(request: VerifiedRequest, jobs: Sequence[DispatchJob], at: datetime) -> None:
    END_TO_END_SECONDS.labels("route").observe((at - request.submitted_at).total_seconds())
    for job in jobs:
        count_dispatched(job)


def count_dispatched(job: DispatchJob) -> None:
    """A job that went out: counted by its labels and logged by its ids (no personal data)."""
    REQUESTS.labels(
        "dispatched", job.category, job.priority, job.location.district or "unknown"
    ).inc()
    logger.info(
        "leg dispatched",
        extra={
            "request_id": job.request_id,
            "leg_id": job.leg_id,
            "department": job.department,
            "team_id": job.team_id,
            "rule_id": job.rule_id,
        },
    )
