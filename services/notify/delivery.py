"""One delivery's state machine, decided without I/O: the handlers apply what it returns.

A delivery (one message on one channel, keyed by its notification id) moves through:

- *claimed*: the stored record decides the next step (:func:`on_claim`) — ``sent`` is only
  announced again, ``suppressed`` stays so, and a message to a phone takes a slot of the
  citizen's rate limit once before it is sent;
- *attempted*: each gateway answer decides (:func:`after_attempt`) — accepted → :class:`Sent`;
  refused and retryable with tries left → :class:`RetryLater` after the shared back-off
  (:class:`shared.retry.Backoff`); otherwise → :class:`GiveUp`;
- *given up*: the failure on the record, on the request's timeline and in the stage's dead
  letters (:func:`failure`), with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from services.notify.channels import Outbound
from shared import requests_store
from shared.db import Document
from shared.kafka import effect_id
from shared.plans import Event
from shared.retry import Backoff
from shared.schemas import NotificationRecord
from shared.stage import PermanentError
from shared.topics import Topic

# What a claimed delivery does next.
Step = Literal["announce_again", "nothing", "take_slot", "send"]

# The reason of a notify dead letter: the gateway refused every attempt.
DELIVERY_FAILED = "delivery_failed"


@dataclass(frozen=True, slots=True)
class Policy:
    """How often one delivery is tried, and the pauses between its tries."""

    backoff: Backoff
    tries: int

    def __post_init__(self) -> None:
        if self.tries < 1:
            raise ValueError("a delivery is tried at least once")


@dataclass(frozen=True, slots=True)
class Sent:
    attempt: int


@dataclass(frozen=True, slots=True)
class RetryLater:
    attempt: int
    error: str
    delay: float


@dataclass(frozen=True, slots=True)
class GiveUp:
    attempt: int
    error: str


Decision = Sent | RetryLater | GiveUp


def on_claim(doc: Document, *, reaches_phone: bool, exempt: bool) -> Step:
    """The next step of a claimed delivery, from its stored record."""
    status = doc.get("status")
    if status == "sent":
        # Announced again with the same event id: covers a crash between storing and publishing.
        return "announce_again"
    if status == "suppressed":
        return "nothing"
    if reaches_phone and not exempt and not doc.get("admitted"):
        return "take_slot"
    return "send"


def after_attempt(
    policy: Policy, *, attempt: int, tries: int, error: str | None, retryable: bool = True
) -> Decision:
    """What follows the ``tries``-th try of this run (numbered ``attempt`` on the record):
    ``error`` is None when the gateway accepted the message."""
    if error is None:
        return Sent(attempt)
    if retryable and tries < policy.tries:
        return RetryLater(attempt, error, policy.backoff.delay(tries))
    return GiveUp(attempt, error)


def attempt_entry(decision: Decision, at: datetime) -> Document:
    """One attempt as the delivery record's ``attempt_log`` holds it."""
    error = None if isinstance(decision, Sent) else decision.error
    status = "sent" if isinstance(decision, Sent) else "failed"
    return {"attempt": decision.attempt, "status": status, "at": at, "error": error}


def announcement(
    message: Outbound,
    channel: str,
    status: str,
    *,
    attempt: int,
    at: datetime,
    error: str | None = None,
) -> Event:
    """One attempt's outcome as announced on ``help.notifications`` (id from its cause)."""
    outcome = NotificationRecord.model_validate(
        {
            "notification_id": message.notification_id,
            "request_id": message.request_id,
            "event": message.event,
            "channel": channel,
            "status": status,
            "language": message.language,
            "attempt": attempt,
            "at": at,
            "error": error,
        }
    )
    return Event(
        Topic.NOTIFICATIONS,
        outcome,
        key=message.request_id,
        name=f"notification.{status}",
        event_id=effect_id("notification", message.notification_id, str(attempt), status),
    )


@dataclass(frozen=True, slots=True)
class Failure:
    """A delivery given up: what its record, the request's timeline and the dead letter say."""

    fields: Document
    transition: Document
    dead_letter: PermanentError


def failure(message: Outbound, channel: str, *, error: str, attempts: int, at: datetime) -> Failure:
    """The effects of giving a delivery up after ``attempts`` attempts."""
    nid = message.notification_id
    detail = f"{channel}:{message.event}:{error}"
    return Failure(
        fields={"status": "failed", "error": error, "failed_at": at},
        transition=requests_store.transition(
            event_id=effect_id("notify-failed", nid),
            status="notification_failed",
            at=at,
            actor="notify",
            reason=detail,
            detail={"notification_id": nid, "channel": channel, "event": message.event},
        ),
        dead_letter=PermanentError(
            DELIVERY_FAILED,
            detail,
            attempts=attempts,
            headers={
                "notification_id": nid,
                "notify_channel": channel,
                "notify_event": message.event,
            },
        ),
    )


def first_dead_letter(failures: list[Failure]) -> PermanentError | None:
    """The record's one dead letter: the first failed delivery names it, the detail lists all
    (a re-drive replays the record once, and the deliveries already sent stay sent)."""
    if not failures:
        return None
    first = failures[0].dead_letter
    if len(failures) == 1:
        return first
    detail = "; ".join(f.dead_letter.detail for f in failures)
    return PermanentError(first.reason, detail, attempts=first.attempts, headers=first.headers)
