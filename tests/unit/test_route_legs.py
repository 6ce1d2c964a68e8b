"""The leg state machine, the request status from its legs, rejections and deadlines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.route import domain, legs
from services.route.legs import LegState, apply_status
from services.route.teams import load_directory
from shared.settings import CONFIG_DIR

pytestmark = pytest.mark.unit

T0 = datetime(2026, 1, 9, 14, 0, tzinfo=UTC)
RULES = domain.load_rules(CONFIG_DIR / "routing.toml")
TEAMS = load_directory(CONFIG_DIR / "teams.toml")


def run(events: list[tuple[str, str, int]], department: str = "medical") -> list[str]:
    """Feeds (event id, status, minute) through the state machine like the handler does;
    returns the outcome of each."""
    state = LegState(department=department)  # type: ignore[arg-type]
    outcomes: list[str] = []
    for event_id, status, minute in events:
        at = T0 + timedelta(minutes=minute)
        outcome = apply_status(state, event_id=event_id, status=status, occurred_at=at)
        outcomes.append(outcome)
        applied = state.applied_events | {event_id}
        if outcome == "apply":
            state = LegState(state.department, status, at, event_id, applied)
        else:
            state = LegState(
                state.department,
                state.progress,
                state.last_occurred_at,
                state.last_event_id,
                applied,
            )
    return outcomes


def test_a_leg_moves_forward() -> None:
    assert run([("e1", "acknowledged", 1), ("e2", "in_progress", 2), ("e3", "resolved", 3)]) == [
        "apply",
        "apply",
        "apply",
    ]


def test_a_duplicate_event_is_applied_once() -> None:
    assert run([("e1", "acknowledged", 1), ("e1", "acknowledged", 1)]) == ["apply", "duplicate"]


def test_the_same_status_again_changes_nothing() -> None:
    assert run([("e1", "acknowledged", 1), ("e2", "acknowledged", 2)]) == ["apply", "repeat"]


def test_resolved_never_returns_to_acknowledged() -> None:
    outcomes = run([("e1", "acknowledged", 1), ("e3", "resolved", 5), ("e2", "in_progress", 6)])
    assert outcomes == ["apply", "apply", "closed"]


def test_an_older_event_is_stale_and_a_lower_rung_is_backwards() -> None:
    assert run([("e2", "in_progress", 5), ("e1", "acknowledged", 1)]) == ["apply", "stale"]
    assert run([("e2", "in_progress", 5), ("e3", "acknowledged", 6)]) == ["apply", "backwards"]


def test_in_progress_and_needs_info_may_alternate() -> None:
    outcomes = run([("a", "in_progress", 1), ("b", "needs_info", 2), ("c", "in_progress", 3)])
    assert outcomes == ["apply", "apply", "apply"]


def test_resolved_without_acknowledgement_is_accepted() -> None:
    assert run([("e1", "resolved", 1)]) == ["apply"]


def test_a_half_applied_event_is_finished_on_redelivery() -> None:
    state = LegState("medical", "resolved", T0, "e9", frozenset())
    assert apply_status(state, event_id="e9", status="resolved", occurred_at=T0) == "apply"


def test_the_command_centre_cannot_reject_what_it_owns() -> None:
    assert run([("e1", "rejected", 1)], department="command") == ["owned"]
    assert run([("e1", "acknowledged", 1)], department="command") == ["apply"]


@pytest.mark.parametrize(
    ("progresses", "level"),
    [
        ([], None),
        (["dispatched", "dispatched"], "dispatched"),
        (["acknowledged", "dispatched"], "acknowledged"),
        (["resolved", "acknowledged"], "in_progress"),
        (["needs_info", "dispatched"], "in_progress"),
        (["resolved", "resolved"], "resolved"),
        (["resolved"], "resolved"),
    ],
)
def test_the_request_is_resolved_only_when_every_leg_is(
    progresses: list[str], level: str | None
) -> None:
    assert legs.request_level(progresses) == level


def test_each_request_level_is_announced_once_and_never_backwards() -> None:
    assert legs.lifecycle_step("acknowledged", []) == "acknowledged"
    assert legs.lifecycle_step("acknowledged", ["acknowledged"]) is None
    assert legs.lifecycle_step("resolved", ["acknowledged"]) == "resolved"
    assert legs.lifecycle_step("in_progress", ["resolved"]) is None
    assert legs.lifecycle_step("dispatched", []) is None


def reroute(
    department: str, attempt: int, rejected_by: set[str], busy: frozenset[str] = frozenset()
) -> legs.Reroute | None:
    return legs.reroute(
        department=department,  # type: ignore[arg-type]
        attempt=attempt,
        district="jinshui",
        rejected_by=rejected_by,
        busy_departments=busy,
        rules=RULES,
        directory=TEAMS,
        load={},
    )


def test_a_first_rejection_goes_to_another_team_of_the_department() -> None:
    decision = reroute("community", 1, {"community-jinshui-1"})
    assert decision is not None
    assert (decision.department, decision.team_id, decision.attempt, decision.reason) == (
        "community",
        "community-jinshui-2",
        2,
        "reassigned",
    )
    assert not decision.escalates


def test_a_second_rejection_goes_to_the_command_centre() -> None:
    decision = reroute("community", 2, {"community-jinshui-1", "community-jinshui-2"})
    assert decision is not None
    assert (decision.department, decision.team_id, decision.attempt, decision.reason) == (
        "command",
        "command-centre",
        3,
        "rejected_twice",
    )
    assert decision.escalates


def test_no_team_left_goes_to_the_next_department_of_the_rules() -> None:
    rules = domain.parse_rules(
        {"version": "t", "defaults": {"transport": "police"}, "reroute": {"police": "community"}}
    )
    every_police_team = {t.id for t in TEAMS.teams if t.department == "police"}
    decision = legs.reroute(
        department="police",
        attempt=1,
        district="jinshui",
        rejected_by=every_police_team,
        busy_departments=set(),
        rules=rules,
        directory=TEAMS,
        load={},
    )
    assert decision is not None
    assert (decision.department, decision.team_id, decision.reason) == (
        "community",
        "community-jinshui-1",
        "next_department",
    )
    # The next department already has a leg of this request: the command centre takes it.
    busy = legs.reroute(
        department="police",
        attempt=1,
        district="jinshui",
        rejected_by=every_police_team,
        busy_departments={"community"},
        rules=rules,
        directory=TEAMS,
        load={},
    )
    assert busy is not None
    assert (busy.department, busy.reason) == ("command", "no_team_left")


def test_a_command_leg_is_never_rerouted() -> None:
    assert reroute("command", 3, {"command-centre"}) is None


def test_deadlines_breach_once_each() -> None:
    ack, res = T0 + timedelta(minutes=15), T0 + timedelta(hours=2)

    def due(
        now: datetime, progress: str = "dispatched", breached: tuple[str, ...] = ()
    ) -> list[str]:
        return list(
            legs.due_breaches(
                now=now, progress=progress, acknowledge_by=ack, resolve_by=res, breached=breached
            )
        )

    assert due(T0) == []
    assert due(ack) == ["acknowledge"]
    assert due(ack, breached=("acknowledge",)) == []
    assert due(ack, progress="acknowledged") == []
    assert due(res, progress="in_progress") == ["resolve"]
    assert due(res, breached=("acknowledge",)) == ["resolve"]
    assert due(res, progress="resolved") == []
    assert (
        legs.next_due(progress="dispatched", acknowledge_by=ack, resolve_by=res, breached=()) == ack
    )
    assert (
        legs.next_due(progress="acknowledged", acknowledge_by=ack, resolve_by=res, breached=())
        == res
    )
    assert (
        legs.next_due(
            progress="dispatched",
            acknowledge_by=ack,
            resolve_by=res,
            breached=("acknowledge", "resolve"),
        )
        is None
    )


def test_a_leg_another_leg_took_over_takes_no_report() -> None:
    handed_over = LegState(department="medical", current=False)
    for status in ("acknowledged", "resolved", "rejected"):
        assert apply_status(handed_over, event_id="e", status=status, occurred_at=T0) == "closed"
    command = LegState(department="command", current=False)
    assert apply_status(command, event_id="e", status="rejected", occurred_at=T0) == "closed"
