"""Route's typed records: a leg and a case as stored and read back, and the rules they carry."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.route.models import Case, Leg
from shared.db import unpack
from shared.schemas import DispatchJob
from tests.support.records import T0, dispatch_job

pytestmark = pytest.mark.unit


def job(leg_id: str = "r-1:medical:1", department: str = "medical") -> DispatchJob:
    return dispatch_job(leg_id=leg_id, department=department, team_id=f"{department}-jinshui-1")


def test_a_new_leg_reads_back_as_it_was_stored() -> None:
    leg = Leg.new(job(), slot="medical", cycle=0)
    doc = leg.to_document()
    assert doc["_id"] == "r-1:medical:1"
    # Fields at their defaults are left out; reports push the history onto the leg later.
    assert set(doc) == {
        "_id",
        "request_id",
        "department",
        "team_id",
        "current",
        "status",
        "progress",
        "job",
        "priority",
        "acknowledge_by",
        "resolve_by",
    }
    assert unpack(doc["job"]) == job().model_dump(mode="json")
    assert doc["priority"] == job().priority
    assert Leg.from_document(doc) == leg
    # A leg stored before its job was packed (the job as fields) reads back the same.
    assert Leg.from_document({**doc, "job": job().model_dump(mode="json")}) == leg
    # The batch planner stores the same document (already counted against its team).
    counted = Leg.new(job(), slot="medical", cycle=0, counted=True).to_document()
    assert counted == {**doc, "counted": True}


def test_a_leg_away_from_every_default_reads_back_whole() -> None:
    leg = Leg.new(
        job(), slot="medical-night", cycle=2, blocking=False, parent="r-1:command:1"
    ).changed(
        attempt=3,
        current=False,
        status="escalated",
        progress="acknowledged",
        last_occurred_at=T0 + timedelta(minutes=3),
        last_event_id="e1",
        applied_events=frozenset({"e0", "e1"}),
        breached=("acknowledge",),
        rejected_by=("medical-jinshui-2",),
        superseded_by="r-1:medical:2",
        published=True,
        dispatched_at=T0 + timedelta(seconds=5),
        counted=True,
        released=True,
    )
    doc = leg.to_document()
    assert Leg.from_document(doc) == leg
    assert (doc["blocking"], doc["cycle"], doc["slot"], doc["attempt"]) == (
        False,
        2,
        "medical-night",
        3,
    )


def test_a_stored_leg_with_reports_reads_back_with_its_state() -> None:
    doc = {
        **Leg.new(job(), slot="medical", cycle=1, parent="r-1:command:1").to_document(),
        "progress": "acknowledged",
        "status": "escalated",
        "last_event_id": "e1",
        "last_occurred_at": T0 + timedelta(minutes=3),
        "applied_events": ["e0", "e1"],
        "breached": ["acknowledge"],
        "superseded_by": "r-1:medical:2",
        "current": False,
        "history": [{"event_id": "e1"}],
    }
    leg = Leg.from_document(doc)
    assert (leg.progress, leg.status, leg.cycle, leg.parent) == (
        "acknowledged",
        "escalated",
        1,
        "r-1:command:1",
    )
    assert leg.applied_events == frozenset({"e0", "e1"})
    assert leg.breached == ("acknowledge",)
    assert leg.superseded_by == "r-1:medical:2"
    assert not leg.open
    state = leg.state()
    assert (state.progress, state.last_event_id, state.current) == ("acknowledged", "e1", False)


def test_a_leg_is_open_until_resolved_rejected_or_taken_over() -> None:
    leg = Leg.new(job(), slot="medical", cycle=0)
    assert leg.open
    assert not leg.changed(progress="resolved").open
    assert not leg.changed(progress="rejected").open
    assert not leg.changed(current=False).open
    assert leg.changed(progress="needs_info").open


def test_a_change_is_a_new_leg() -> None:
    leg = Leg.new(job(), slot="medical", cycle=0)
    published = leg.changed(published=True)
    assert published.published
    assert not leg.published
    # Whether this processing created it is never stored, and does not make it another leg.
    assert leg.changed(created_now=True) == leg
    assert "created_now" not in leg.changed(created_now=True).to_document()


def test_the_next_deadline_follows_the_progress_and_the_breaches() -> None:
    leg = Leg.new(job(), slot="medical", cycle=0)
    assert leg.next_due() == leg.acknowledge_by
    assert leg.next_due(progress="acknowledged") == leg.resolve_by
    assert leg.next_due(progress="resolved") is None
    assert leg.changed(breached=("acknowledge",)).next_due() == leg.resolve_by


def test_the_summary_names_work_and_oversight() -> None:
    work = Leg.new(job(), slot="medical", cycle=0)
    watch = Leg.new(job("r-1:sla:1", "command"), slot="sla", cycle=0, blocking=False)
    assert work.summary() == {
        "leg_id": "r-1:medical:1",
        "department": "medical",
        "team_id": "medical-jinshui-1",
        "status": "dispatched",
        "attempt": 1,
        "current": True,
        "role": "work",
    }
    assert watch.summary()["role"] == "oversight"


def test_a_case_reads_back_and_knows_its_cycle() -> None:
    doc = {
        "_id": "r-1",
        "leg_ids": ["a", "b", "c", "d"],
        "cycle": 1,
        "emitted": ["0:acknowledged", "0:resolved", "1:acknowledged"],
        "reopens": ["reopen-1"],
        "handled": ["reopen-1"],
    }
    case = Case.from_document(doc)
    assert Case.from_document(case.to_document()) == case
    assert case.emitted_in(0) == ["acknowledged", "resolved"]
    assert case.emitted_in(1) == ["acknowledged"]
    assert "reopen-1" in case.handled
    assert Case.from_document({"_id": "r-2"}) == Case(request_id="r-2")


def test_the_request_status_adds_up_from_this_cycles_current_work() -> None:
    base = Leg.new(job(), slot="medical", cycle=1)
    legs_of_case = [
        base.changed(leg_id="old-cycle", cycle=0),
        base.changed(leg_id="replaced", current=False),
        base.changed(leg_id="oversight", blocking=False),
        base.changed(leg_id="work"),
    ]
    case = Case(request_id="r-1", cycle=1)
    assert [leg.leg_id for leg in case.current_work(legs_of_case)] == ["work"]
