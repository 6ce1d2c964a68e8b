"""The call-back rules of a review item: pure functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.verify import calls
from services.verify.calls import CallRules, Step

pytestmark = pytest.mark.unit

RULES = CallRules(
    service_level=timedelta(minutes=5),
    max_unreachable=3,
    after_unreachable="escalate",
    after_wrong_number="reject",
)
T0 = datetime(2026, 1, 9, 14, 0, tzinfo=UTC)


def test_unreachable_is_tried_again_until_the_limit_then_escalated() -> None:
    assert calls.next_step([], RULES) == Step("open")
    assert calls.next_step(["unreachable"], RULES) == Step("open")
    assert calls.next_step(["unreachable"] * 2, RULES) == Step("open")
    assert calls.next_step(["unreachable"] * 3, RULES) == Step("escalated", "unreachable")


def test_reached_at_any_attempt_ends_the_calls() -> None:
    assert calls.next_step(["unreachable", "reached"], RULES) == Step("reached")


def test_a_wrong_number_is_handled_by_its_own_rule() -> None:
    assert calls.next_step(["wrong_number"], RULES) == Step("reject", "wrong_number")
    verify = CallRules(RULES.service_level, 2, "verify", "escalate")
    assert calls.next_step(["unreachable"] * 2, verify) == Step("verify", "unreachable")
    assert calls.next_step(["wrong_number"], verify) == Step("escalated", "wrong_number")


def test_the_five_minute_service_level() -> None:
    assert calls.due_at(T0, RULES) == T0 + timedelta(minutes=5)
    late = T0 + timedelta(minutes=5, seconds=1)
    assert calls.overdue(flagged_at=T0, attempts=0, now=late, rules=RULES)
    assert not calls.overdue(flagged_at=T0, attempts=1, now=late, rules=RULES)
    assert not calls.overdue(flagged_at=T0, attempts=0, now=T0 + timedelta(minutes=4), rules=RULES)
    assert calls.within_level(
        flagged_at=T0, first_attempt_at=T0 + timedelta(minutes=5), rules=RULES
    )
    assert not calls.within_level(flagged_at=T0, first_attempt_at=late, rules=RULES)
