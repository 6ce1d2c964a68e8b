"""The call-back task of a review item, stored, and the queue's gauges kept from the database.

Collection ``review_calls``: ``_id`` = request id, the item's call task — when it fell due,
its state (services/verify/calls.py) and the log of attempts, each with its outcome, verifier
and time. An attempt sent with an ``Idempotency-Key`` is recorded once however often it is
retried. The review item itself (``review``) is flagged and moved to the front of the queue
when the call rule escalates it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.verify import calls
from services.verify.calls import CallOutcome, CallRules
from services.verify.domain import Config
from services.verify.repository import REVIEW, VerifyRepository
from services.verify.review import ReviewDecision, apply_review_decision
from shared.db import Database, Document
from shared.envelope import utcnow
from shared.kafka import EventBus
from shared.metrics import (
    REVIEW_QUEUE_DEPTH,
    VERIFICATION_CALLS,
    VERIFICATION_CALLS_HANDLED,
    VERIFICATION_CALLS_OVERDUE,
    VERIFICATION_FIRST_CALL_SECONDS,
)

logger = logging.getLogger(__name__)

CALLS = "review_calls"
# Before every P1 item: an item the call rule escalated is worked first.
ESCALATED_RANK = -1
RULE_ACTOR = "verify:calls"


@dataclass(frozen=True, slots=True)
class AttemptResult:
    ok: bool
    task: Document | None = None
    error: str = ""
    message: str = ""


class CallTasks:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, request_id: str) -> Document | None:
        return await self.db[CALLS].find_one({"_id": request_id})

    async def store(self, task: Document) -> None:
        await self.db[CALLS].replace_one({"_id": task["_id"]}, task, upsert=True)

    async def all(self) -> dict[str, Document]:
        """Every task, by request id (a scan: the queue is small)."""
        return {
            str(doc["_id"]): doc
            async for doc in self.db[CALLS].find({}, {"state": 1, "attempts.at": 1})
        }

    async def escalate(self, request_id: str, *, reason: str, at: datetime) -> None:
        await self.db[REVIEW].update_one(
            {"_id": request_id},
            {
                "$set": {
                    "priority_rank": ESCALATED_RANK,
                    "escalated": True,
                    "escalated_reason": reason,
                    "escalated_at": at,
                }
            },
        )

    async def open_items(self) -> list[Document]:
        """The open review items (a scan: the queue is small)."""
        return [
            doc
            async for doc in self.db[REVIEW].find({"state": "open"}, {"_id": 1, "flagged_at": 1})
        ]


def task_view(task: Document | None, review: Document, rules: CallRules) -> dict[str, Any]:
    """The call task as verifiers see it."""
    attempts: list[Document] = list((task or {}).get("attempts", []))
    flagged_at: datetime = review["flagged_at"]
    first = attempts[0]["at"] if attempts else None
    return {
        "request_id": review["_id"],
        "state": (task or {}).get("state", "open"),
        "due_at": calls.due_at(flagged_at, rules),
        "within_service_level": (
            calls.within_level(flagged_at=flagged_at, first_attempt_at=first, rules=rules)
            if first is not None
            else None
        ),
        "unreachable": sum(1 for a in attempts if a["outcome"] == "unreachable"),
        "max_unreachable": rules.max_unreachable,
        "attempts": [
            {k: a.get(k) for k in ("attempt", "outcome", "at", "verifier", "note")}
            for a in attempts
        ],
    }


async def record_attempt(
    request_id: str,
    *,
    verifier: str,
    outcome: CallOutcome,
    note: str | None,
    key: str | None,
    tasks: CallTasks,
    repo: VerifyRepository,
    bus: EventBus,
    config: Config,
    rules: CallRules,
    now: datetime,
) -> AttemptResult:
    """Log one call attempt on an open review item and apply the call rule to the log."""
    review = await repo.get_review(request_id)
    if review is None:
        return AttemptResult(False, error="not_found", message="No review with this id.")
    task: Document = await tasks.get(request_id) or {
        "_id": request_id,
        "state": "open",
        "flagged_at": review["flagged_at"],
        "attempts": [],
    }
    attempts: list[Document] = list(task["attempts"])
    if key and any(a.get("key") == key for a in attempts):
        return AttemptResult(True, task=task)  # a retried request: recorded once
    if review.get("state") != "open" or not calls.accepts_attempts(str(task["state"])):
        return AttemptResult(False, error="already_decided", message="This review is decided.")
    attempts.append(
        {"attempt": len(attempts) + 1, "outcome": outcome, "at": now, "verifier": verifier}
        | ({"note": note} if note else {})
        | ({"key": key} if key else {})
    )
    step = calls.next_step([a["outcome"] for a in attempts], rules)
    task = {**task, "attempts": attempts, "state": step.state, "updated_at": now}
    await tasks.store(task)
    VERIFICATION_CALLS.labels(outcome).inc()
    if len(attempts) == 1:
        waited = (now - review["flagged_at"]).total_seconds()
        VERIFICATION_FIRST_CALL_SECONDS.observe(max(0.0, waited))
    if step.reason is not None and step.state != "open":
        await _apply_rule(review, step, tasks=tasks, repo=repo, bus=bus, config=config, now=now)
    logger.info(
        "call attempt recorded",
        extra={"request_id": request_id, "outcome": outcome, "status": step.state},
    )
    return AttemptResult(True, task=task)


async def _apply_rule(
    review: Document,
    step: calls.Step,
    *,
    tasks: CallTasks,
    repo: VerifyRepository,
    bus: EventBus,
    config: Config,
    now: datetime,
) -> None:
    """The configured handling of an item whose citizen could not be reached."""
    reason = str(step.reason)
    request_id = str(review["_id"])
    VERIFICATION_CALLS_HANDLED.labels(step.state, reason).inc()
    if step.state == "escalated":
        if not review.get("escalated"):
            await tasks.escalate(request_id, reason=reason, at=now)
        logger.warning(
            "review escalated: the citizen could not be reached",
            extra={"request_id": request_id, "reason": reason},
        )
        return
    await apply_review_decision(
        review,
        ReviewDecision("verify" if step.state == "verify" else "reject", reason=reason),
        actor=RULE_ACTOR,
        bus=bus,
        repo=repo,
        config=config,
        at=now,
        reject_code=reason,
    )


async def refresh_gauges(tasks: CallTasks, rules: CallRules, *, now: datetime) -> tuple[int, int]:
    """Set the queue depth and the overdue calls from the database; returns both."""
    items = await tasks.open_items()
    called = {rid for rid, task in (await tasks.all()).items() if task.get("attempts")}
    overdue = sum(
        1
        for item in items
        if calls.overdue(
            flagged_at=item["flagged_at"],
            attempts=1 if item["_id"] in called else 0,
            now=now,
            rules=rules,
        )
    )
    REVIEW_QUEUE_DEPTH.set(len(items))
    VERIFICATION_CALLS_OVERDUE.set(overdue)
    return len(items), overdue


async def gauge_loop(tasks: CallTasks, rules: CallRules, *, interval: float) -> None:
    """Keep the queue's gauges current (a restart measures afresh: the queue is stored)."""
    while True:
        await refresh_gauges(tasks, rules, now=utcnow())
        await asyncio.sleep(interval)
