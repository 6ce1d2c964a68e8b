"""Notify's delivery state machine: the step after a claim, the decision after an attempt, and
what a delivery given up stores and dead-letters."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.notify import delivery
from services.notify.repository import delivery_record, packed_delivery
from shared.retry import Backoff
from tests.support.records import outbound

pytestmark = pytest.mark.unit

POLICY = delivery.Policy(Backoff(0.25, 1.0), tries=4)
AT = datetime(2026, 1, 9, 14, 20, tzinfo=UTC)
MESSAGE = outbound(event="verified", language="zh", text="...")


@pytest.mark.parametrize(
    ("doc", "reaches_phone", "exempt", "step"),
    [
        ({"status": "sent", "admitted": True}, True, False, "announce_again"),
        ({"status": "suppressed"}, True, False, "nothing"),
        ({"status": "pending"}, True, False, "take_slot"),
        ({"status": "pending", "admitted": True}, True, False, "send"),
        ({"status": "pending"}, True, True, "send"),
        ({"status": "pending"}, False, False, "send"),
        ({"status": "failed", "admitted": True}, True, False, "send"),
    ],
)
def test_the_stored_record_decides_the_step_after_a_claim(
    doc: dict[str, object], reaches_phone: bool, exempt: bool, step: str
) -> None:
    assert delivery.on_claim(doc, reaches_phone=reaches_phone, exempt=exempt) == step


def test_refused_attempts_back_off_then_give_up() -> None:
    decisions = [
        delivery.after_attempt(POLICY, attempt=n, tries=n, error="unreachable: x")
        for n in range(1, 5)
    ]
    assert decisions == [
        delivery.RetryLater(1, "unreachable: x", 0.25),
        delivery.RetryLater(2, "unreachable: x", 0.5),
        delivery.RetryLater(3, "unreachable: x", 1.0),
        delivery.GiveUp(4, "unreachable: x"),
    ]


def test_an_accepted_attempt_is_sent_and_a_final_refusal_is_not_retried() -> None:
    assert delivery.after_attempt(POLICY, attempt=7, tries=2, error=None) == delivery.Sent(7)
    refused = delivery.after_attempt(POLICY, attempt=3, tries=1, error="rejected", retryable=False)
    assert refused == delivery.GiveUp(3, "rejected")


def test_attempt_numbers_continue_the_record_while_tries_count_this_run() -> None:
    # A redelivery of a delivery tried 4 times before: attempt 5 is the run's first try.
    decision = delivery.after_attempt(POLICY, attempt=5, tries=1, error="timeout")
    assert decision == delivery.RetryLater(5, "timeout", 0.25)
    assert delivery.attempt_entry(decision, AT) == {
        "attempt": 5,
        "status": "failed",
        "at": AT,
        "error": "timeout",
    }


def test_a_policy_tries_at_least_once() -> None:
    with pytest.raises(ValueError, match="at least once"):
        delivery.Policy(Backoff(0.25, 1.0), tries=0)


def test_a_delivery_given_up_names_its_reason_on_every_side() -> None:
    failure = delivery.failure(MESSAGE, "sms", error="unreachable: x", attempts=3, at=AT)
    assert failure.fields == {"status": "failed", "error": "unreachable: x", "failed_at": AT}
    assert failure.transition["status"] == "notification_failed"
    assert failure.transition["reason"] == "sms:verified:unreachable: x"
    dead = failure.dead_letter
    assert (dead.reason, dead.detail, dead.attempts) == (
        "delivery_failed",
        "sms:verified:unreachable: x",
        3,
    )
    assert dead.headers == {
        "notification_id": "n-1",
        "notify_channel": "sms",
        "notify_event": "verified",
    }
    again = delivery.failure(MESSAGE, "sms", error="other", attempts=4, at=AT)
    assert again.transition["event_id"] == failure.transition["event_id"], "keyed by the id"


def test_a_record_has_one_dead_letter_naming_every_delivery_given_up() -> None:
    assert delivery.first_dead_letter([]) is None
    sms = delivery.failure(MESSAGE, "sms", error="a", attempts=2, at=AT)
    web = delivery.failure(MESSAGE, "web", error="b", attempts=1, at=AT)
    dead = delivery.first_dead_letter([sms, web])
    assert dead is not None
    assert dead.detail == "sms:verified:a; web:verified:b"
    assert dead.headers["notify_channel"] == "sms"
    assert dead.attempts == 2


def test_announcements_are_keyed_by_notification_attempt_and_status() -> None:
    sent = delivery.announcement(MESSAGE, "sms", "sent", attempt=2, at=AT)
    failed = delivery.announcement(MESSAGE, "sms", "failed", attempt=2, at=AT, error="x")
    assert sent.key == "R-1"
    assert sent.name == "notification.sent"
    assert sent.event_id != failed.event_id
    assert sent.event_id == delivery.announcement(MESSAGE, "sms", "sent", attempt=2, at=AT).event_id


def test_a_packed_delivery_record_reads_back_whole() -> None:
    document = {
        "_id": "n-1",
        "request_id": "R-1",
        "status": "sent",
        "channel": "sms",
        "admitted": True,
        "attempts": 1,
        "attempt_log": [{"attempt": 1, "status": "sent", "at": AT, "error": None}],
    }
    stored = packed_delivery(document)
    assert set(stored) == {"_id", "request_id", "status", "detail"}
    assert isinstance(stored["detail"], bytes)
    assert delivery_record(stored) == document
    assert delivery_record(document) == document, "a record stored as fields reads as it is"


def test_fields_set_on_a_packed_record_win_and_its_attempts_follow() -> None:
    first = {"attempt": 1, "status": "failed", "at": AT, "error": "timeout"}
    stored = packed_delivery(
        {
            "_id": "n-1",
            "request_id": "R-1",
            "status": "failed",
            "attempts": 1,
            "attempt_log": [first],
        }
    )
    second = {"attempt": 2, "status": "sent", "at": AT, "error": None}
    stored.update(status="sent", attempts=2, attempt_log=[second])  # the per-record path's update
    record = delivery_record(stored)
    assert (record["status"], record["attempts"]) == ("sent", 2)
    assert record["attempt_log"] == [first, second]
