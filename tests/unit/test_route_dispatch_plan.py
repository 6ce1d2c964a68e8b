"""Route's plan of a first dispatch: what it stores (one case, and per leg the leg and its
timer) and how the request's readers see the case it guards with."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.route import domain, timer_store
from services.route.dispatch import DispatchRules, dispatched
from services.route.repository import CASES, LEGS, LOOKUP, TEAMS
from services.route.teams import load_directory
from shared import requests_store
from shared.plans import Insert, Update
from shared.schemas import VerifiedRequest
from shared.settings import CONFIG_DIR
from tests.support.journey import verified_request

pytestmark = pytest.mark.unit

AT = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def rules() -> DispatchRules:
    return DispatchRules(
        rules=domain.load_rules(CONFIG_DIR / "routing.toml"),
        levels=domain.load_service_levels(CONFIG_DIR / "service_levels.toml"),
        directory=load_directory(CONFIG_DIR / "teams.toml"),
    )


def _request(request_id: str, **overrides: object) -> VerifiedRequest:
    body = verified_request(request_id, phone="+8613800000001", priority="P2")
    return VerifiedRequest.model_validate({**body, **overrides})


def test_a_two_leg_dispatch_stores_one_case_and_per_leg_the_leg_and_its_timer(
    rules: DispatchRules,
) -> None:
    request = _request(
        "r-two", description="家里没有吃的了，也需要买降压药", category="food_supply"
    )
    plan = dispatched(request, rules=rules, load={}, at=AT, cause=None)
    jobs = [event.value for event in plan.events]
    assert len(jobs) == 2, "food with medicine is two legs"
    assert [(w.collection, w.document["_id"]) for w in plan.guards] == [(CASES, "r-two")]
    inserts = [(w.collection, w.document["_id"]) for w in plan.writes if isinstance(w, Insert)]
    leg_ids = [job.leg_id for job in jobs]  # type: ignore[attr-defined]
    timers = [timer_store.bucket_of(job.acknowledge_by) for job in jobs]  # type: ignore[attr-defined]
    assert sorted(inserts) == sorted(
        [(LEGS, leg) for leg in leg_ids] + list(zip(timers, leg_ids, strict=True))
    )
    assert all(bucket > timer_store.bucket_of(AT) for bucket in timers), "in a minute to come"
    assert all(w.collection == TEAMS for w in plan.writes if isinstance(w, Update))
    assert LOOKUP not in {w.collection for w in plan.writes}
    assert plan.recorded == ()
    # Each first leg's id is the one a status report without a leg id falls back to.
    assert leg_ids == [
        domain.leg_id("r-two", job.department)  # type: ignore[attr-defined]
        for job in jobs
    ]


def test_the_case_reads_as_the_request_dispatched_to_its_departments(
    rules: DispatchRules,
) -> None:
    request = _request("r-one")
    plan = dispatched(request, rules=rules, load={}, at=AT, cause=None)
    [case] = [guard.document for guard in plan.guards]
    base = {"_id": "r-one", "status": "submitted", "timeline": []}
    view = requests_store.merged(base, None, case)
    assert view["status"] == "dispatched"
    assert view["departments"] == ["medical"]
    [leg] = view["legs"]
    assert (leg["department"], leg["status"]) == ("medical", "dispatched")
    assert [entry["status"] for entry in view["timeline"]] == ["dispatched"]
    assert case["leg_ids"] == [leg["leg_id"]]
