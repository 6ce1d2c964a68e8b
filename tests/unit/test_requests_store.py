"""The merged view of a request (shared/requests_store.py): the record, verify's decision with
its copy of the record, and route's first dispatch — whichever of them is there."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from services.verify.domain import Decision
from services.verify.repository import decision_record
from shared import requests_store
from shared.db import pack, unpack
from shared.schemas import SubmittedRequest

T0 = datetime(2022, 1, 9, 14, 5, tzinfo=UTC)


def _submitted() -> SubmittedRequest:
    return SubmittedRequest.model_validate(
        {
            "request_id": "r-1",
            "submitted_at": T0,
            "channel": "web",
            "tracking_token_hash": "h",
            "request": {
                "category": "food_supply",
                "description": "小区封控，需要买菜",
                "contact": {"name": "王女士", "phone": "138 0013 8000"},
                "location": {"district": "金水区"},
                "language": "zh",
            },
        }
    )


def _decision() -> dict[str, Any]:
    decision = Decision(
        outcome="verified",
        priority="P3",
        green_channel=False,
        phone="+8613800138000",
        district="jinshui",
    )
    return decision_record(_submitted(), "verify-1", decision, at=T0 + timedelta(seconds=2))


def _statuses(doc: dict[str, Any]) -> list[str]:
    return [e["status"] for e in doc["timeline"]]


def test_the_decision_s_copy_stands_in_for_a_missing_record() -> None:
    doc = requests_store.merged(None, _decision(), None)
    record = requests_store.submission_document(_submitted(), event_id="x")
    for key in ("_id", "category", "description", "contact", "submitted_at", "channel"):
        assert doc[key] == record[key], key
    assert (doc["status"], doc["priority"], doc["district"]) == ("verified", "P3", "jinshui")
    assert _statuses(doc) == ["submitted", "verified"]
    assert doc["updated_at"] == T0 + timedelta(seconds=2)


def test_intake_s_record_wins_and_its_first_entry_is_kept_once() -> None:
    base = requests_store.submission_document(_submitted(), event_id=_decision_submitted_id())
    base = {**base, "description": "as intake stored it"}
    doc = requests_store.merged(base, _decision(), None)
    assert doc["description"] == "as intake stored it"
    assert _statuses(doc) == ["submitted", "verified"]


def test_a_partial_record_is_completed_from_the_copy() -> None:
    """A later stage created the record with only its own transition (an upsert)."""
    later = requests_store.transition(
        event_id="failed-1", status="notification_failed", at=T0 + timedelta(minutes=1), actor="n"
    )
    partial = {"_id": "r-1", "timeline": [{**later, "sets_status": False}], "absorbed": ["r-2"]}
    doc = requests_store.merged(partial, _decision(), None)
    assert _statuses(doc) == ["submitted", "verified", "notification_failed"]
    assert doc["status"] == "verified"
    assert (doc["category"], doc["submitted_at"], doc["absorbed"]) == ("food_supply", T0, ["r-2"])


def _decision_submitted_id() -> str:
    entry = unpack(_decision()[requests_store.SUBMISSION])["timeline"][0]
    return str(entry["event_id"])


def test_the_merged_record_shows_the_decision_as_its_verification_unless_a_verifier_s() -> None:
    base = requests_store.submission_document(_submitted(), event_id="x")
    doc = requests_store.merged(base, _decision(), None)
    assert doc["verification"]["outcome"] == "verified"
    assert (doc["verification"]["district"], doc["verification"]["by"]) == ("jinshui", "verify")
    corrected = {**base, "verification": {"outcome": "verified", "district": "erqi", "by": "v1"}}
    assert requests_store.merged(corrected, _decision(), None)["verification"]["by"] == "v1"


def test_a_case_s_dispatch_reads_alike_packed_or_stored_as_fields() -> None:
    entry = requests_store.transition(
        event_id="dispatch-1", status="dispatched", at=T0 + timedelta(seconds=3), actor="route"
    )
    dispatch = {"timeline": [entry], "legs": [{"leg_id": "l-1", "status": "dispatched"}]}
    packed = {"_id": "r-1", requests_store.DISPATCH: pack(dispatch), "departments": ["medical"]}
    as_fields = {"_id": "r-1", **dispatch, "departments": ["medical"]}
    views = [requests_store.merged(None, _decision(), case) for case in (packed, as_fields)]
    for doc in views:
        assert _statuses(doc) == ["submitted", "verified", "dispatched"]
        assert doc["status"] == "dispatched"
        assert (doc["legs"][0]["leg_id"], doc["departments"]) == ("l-1", ["medical"])
    assert views[0]["timeline"] == views[1]["timeline"]


def test_a_packed_record_reads_as_the_record_and_later_fields_win() -> None:
    document = requests_store.submission_document(_submitted(), event_id="x")
    stored = requests_store.packed_record(document)
    assert set(stored) == {
        "_id",
        "status",
        "category",
        "submitted_at",
        "updated_at",
        "timeline",
        "applied_events",
        requests_store.BODY,
    }
    assert "王女士" not in str(stored), "the contact is inside the packed value"
    assert requests_store.record(stored) == document
    assert requests_store.record(document) == document, "a record stored as fields reads as it is"
    # A verifier's correction sets fields on the stored record: they win over the packed ones.
    fields = {"priority": "P1", "departments": ["medical"]}
    doc = requests_store.merged({**stored, **fields}, _decision(), None)
    assert (doc["priority"], doc["departments"]) == ("P1", ["medical"])
    assert (doc["contact"]["name"], doc["description"]) == ("王女士", "小区封控，需要买菜")
    assert doc == requests_store.merged({**document, **fields}, _decision(), None)
