"""The command centre's re-dispatch rule: which legs it may take, where they go, and how the
leg it replaces keys the action (the same plan on a retry, a replay after success)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from services.route import domain, redispatch
from services.route.models import Leg
from services.route.redispatch import Ask, Plan, Refusal, Replay, decide
from services.route.teams import load_directory
from shared.schemas import DispatchJob
from shared.settings import CONFIG_DIR
from tests.support.records import dispatch_job

pytestmark = pytest.mark.unit

RULES = domain.load_rules(CONFIG_DIR / "routing.toml")
TEAMS = load_directory(CONFIG_DIR / "teams.toml")


def dispatched(
    job: DispatchJob, *, slot: str, parent: str | None = None, blocking: bool = True
) -> Leg:
    """A leg route has just dispatched, nothing reported on it yet."""
    return Leg.new(job, slot=slot, cycle=0, parent=parent, blocking=blocking)


# The command centre's own leg for a food request, holding the community slot after leg-b.
COMMAND_JOB = dispatch_job(
    leg_id="leg-c",
    department="command",
    team_id="command-centre",
    category="food_supply",
    description="家里没有菜了",
    special_groups=[],
)
COMMAND_LEG = dispatched(COMMAND_JOB, slot="community", parent="leg-b")
WORK_LEG = dispatched(dispatch_job(leg_id="leg-w", special_groups=["elderly"]), slot="medical")
# The command centre's oversight of the medical job leg-w, whose deadline was missed.
OVERSIGHT_LEG = dispatched(
    dispatch_job(leg_id="leg-o", department="command", team_id="command-centre", special_groups=[]),
    slot="sla_acknowledge:leg-w",
    parent="leg-w",
    blocking=False,
)


def ask(**kwargs: object) -> Ask:
    return Ask(desk="desk-1", reason="wrong department", **kwargs)  # type: ignore[arg-type]


def run(source: Leg, request: Ask, watched: Leg | None = None) -> redispatch.Decision:
    return decide(source, request, watched=watched, rules=RULES, directory=TEAMS, load={})


def test_a_command_leg_goes_to_the_named_department() -> None:
    plan = run(COMMAND_LEG, ask(department="medical"))
    assert isinstance(plan, Plan)
    assert plan.department == "medical"
    assert plan.team_id.startswith("medical-")
    assert plan.replaces == ("leg-c",)
    assert plan.category == "food_supply"
    assert not plan.recategorised
    assert plan.reason == "wrong department"
    assert plan.actor == "command:desk-1"
    assert plan.cycle == 0
    assert plan.slot == "redispatch:leg-c"


def test_a_new_category_alone_picks_the_categorys_department() -> None:
    plan = run(COMMAND_LEG, ask(category="transport"))
    assert isinstance(plan, Plan)
    assert (plan.department, plan.category, plan.recategorised) == ("police", "transport", True)


def test_a_category_and_a_department_are_both_kept() -> None:
    plan = run(COMMAND_LEG, ask(category="health_code", department="community"))
    assert isinstance(plan, Plan)
    assert (plan.department, plan.category) == ("community", "health_code")


def test_the_new_leg_is_keyed_by_the_leg_it_replaces() -> None:
    first = run(COMMAND_LEG, ask(department="medical"))
    again = run(COMMAND_LEG, ask(department="police"))
    other = run(replace(COMMAND_LEG, leg_id="leg-d"), ask(department="medical"))
    assert isinstance(first, Plan)
    assert isinstance(again, Plan)
    assert isinstance(other, Plan)
    assert first.new_leg_id == again.new_leg_id  # one successor, whatever a retry asks
    assert first.new_leg_id != other.new_leg_id
    assert first.event_id == again.event_id


def test_after_the_hand_over_a_retry_is_a_replay() -> None:
    plan = run(COMMAND_LEG, ask(department="medical"))
    assert isinstance(plan, Plan)
    done = replace(COMMAND_LEG, current=False, superseded_by=plan.new_leg_id)
    assert run(done, ask(department="police")) == Replay("r-1", plan.new_leg_id)


def test_a_leg_replaced_otherwise_is_refused() -> None:
    rerouted = replace(COMMAND_LEG, current=False, superseded_by="leg-x")
    refusal = run(rerouted, ask(department="medical"))
    assert isinstance(refusal, Refusal)
    assert refusal.code == "superseded"


def test_only_the_command_centres_legs_are_taken() -> None:
    refusal = run(WORK_LEG, ask(department="police"))
    assert isinstance(refusal, Refusal)
    assert refusal.code == "not_command_leg"


def test_a_finished_leg_is_refused() -> None:
    refusal = run(replace(COMMAND_LEG, progress="resolved"), ask(department="medical"))
    assert isinstance(refusal, Refusal)
    assert refusal.code == "closed"


def test_something_must_change() -> None:
    refusal = run(COMMAND_LEG, ask())
    assert isinstance(refusal, Refusal)
    assert refusal.code == "nothing_to_change"


def test_the_command_centre_cannot_send_a_leg_to_itself() -> None:
    for request in (ask(department="command"), ask(category="suggestion")):
        refusal = run(COMMAND_LEG, request)
        assert isinstance(refusal, Refusal)
        assert refusal.code == "stays_with_command"


def test_an_oversight_leg_takes_the_missed_job_from_its_team() -> None:
    plan = run(OVERSIGHT_LEG, ask(department="medical"), watched=WORK_LEG)
    assert isinstance(plan, Plan)
    assert plan.replaces == ("leg-o", "leg-w")
    assert plan.team_id != WORK_LEG.team_id  # another team of the same department


def test_an_oversight_leg_of_a_finished_job_replaces_only_itself() -> None:
    done = replace(WORK_LEG, progress="resolved")
    plan = run(OVERSIGHT_LEG, ask(department="police"), watched=done)
    assert isinstance(plan, Plan)
    assert plan.replaces == ("leg-o",)


def test_owned_legs_are_the_command_centres_open_ones() -> None:
    assert redispatch.owned(COMMAND_LEG)
    assert redispatch.owned(OVERSIGHT_LEG)
    assert not redispatch.owned(replace(COMMAND_LEG, progress="resolved"))
    assert not redispatch.owned(replace(COMMAND_LEG, current=False))
    assert not redispatch.owned(WORK_LEG)
