"""Verification calls: the call-back to a doubtful request's citizen, as a task on its review
item. Pure rules, no I/O.

Every review item gets a call task when it enters the queue, due within the service level
(five minutes by default). A verifier records each attempt with its outcome: ``reached`` (the
verifier can now decide), ``unreachable`` (try again) or ``wrong_number``. After the configured
number of unreachable attempts, or a wrong number, the configured rule applies: the item is
escalated (kept in the queue, flagged and listed first), or verified or rejected as if a
verifier had decided. Nothing is dropped: every item ends reached, escalated or decided.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

CallOutcome = Literal["reached", "unreachable", "wrong_number"]
CALL_OUTCOMES: tuple[CallOutcome, ...] = ("reached", "unreachable", "wrong_number")
# What happens to an item whose citizen cannot be reached.
Handling = Literal["escalate", "verify", "reject"]
# The task's state after an attempt: still to call, reached, or handled by the rule.
CallState = Literal["open", "reached", "escalated", "verify", "reject"]
# The reason code a rule's decision carries (on the timeline and in the citizen's message).
UNREACHABLE = "unreachable"
WRONG_NUMBER = "wrong_number"


@dataclass(frozen=True, slots=True)
class CallRules:
    service_level: timedelta
    max_unreachable: int
    after_unreachable: Handling
    after_wrong_number: Handling


@dataclass(frozen=True, slots=True)
class Step:
    """What an attempt leads to: the task's new state and, for a rule, its reason code."""

    state: CallState
    reason: str | None = None


def due_at(flagged_at: datetime, rules: CallRules) -> datetime:
    """When the first call must have been made."""
    return flagged_at + rules.service_level


def next_step(outcomes: Sequence[CallOutcome], rules: CallRules) -> Step:
    """The task's state after its attempts so far (the last one just recorded)."""
    if not outcomes:
        return Step("open")
    last = outcomes[-1]
    if last == "reached":
        return Step("reached")
    if last == "wrong_number":
        return _handled(rules.after_wrong_number, WRONG_NUMBER)
    unreachable = sum(1 for outcome in outcomes if outcome == "unreachable")
    if unreachable >= rules.max_unreachable:
        return _handled(rules.after_unreachable, UNREACHABLE)
    return Step("open")


def _handled(handling: Handling, reason: str) -> Step:
    return Step(handling if handling != "escalate" else "escalated", reason)


def accepts_attempts(state: str) -> bool:
    """Whether the task takes more attempts: an escalated item can still be called."""
    return state in ("open", "escalated", "reached")


def overdue(*, flagged_at: datetime, attempts: int, now: datetime, rules: CallRules) -> bool:
    """An item nobody has called yet, past its service level."""
    return attempts == 0 and now > due_at(flagged_at, rules)


def within_level(*, flagged_at: datetime, first_attempt_at: datetime, rules: CallRules) -> bool:
    return first_attempt_at <= due_at(flagged_at, rules)
