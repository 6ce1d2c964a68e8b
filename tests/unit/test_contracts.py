"""The published contract (contracts/) matches the code, and its schemas accept what the code
produces and reject what it refuses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from jsonschema.exceptions import ValidationError  # type: ignore[import-untyped]
from pydantic import BaseModel

from services.intake import handlers as intake_handlers
from shared.contracts import values
from shared.schemas import PartnerHelpRequest, StatusEvent, SurveyAnswer
from shared.topics import Topic
from tests.support.records import dispatch_job
from tools import contracts

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
CONTRACTS = REPO / "contracts"


def committed_schema(topic: Topic) -> dict[str, Any]:
    path = CONTRACTS / "schemas" / f"{topic.value}.schema.json"
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def validator(topic: Topic) -> Draft202012Validator:
    return Draft202012Validator(
        committed_schema(topic), format_checker=Draft202012Validator.FORMAT_CHECKER
    )


def as_json(model: BaseModel) -> Any:
    return json.loads(model.model_dump_json())


def test_committed_contracts_match_the_code() -> None:
    problems = contracts.differences(CONTRACTS)
    assert problems == [], "contracts/ differs from the code; run make contracts:\n" + "\n".join(
        problems
    )


def test_every_topic_has_a_schema_or_is_a_dead_letter_topic() -> None:
    for topic in Topic:
        path = CONTRACTS / "schemas" / f"{topic.value}.schema.json"
        if topic.value.startswith("help.dlq."):
            assert not path.exists()
            assert values.TOPIC_MODELS[topic] == ()
        else:
            Draft202012Validator.check_schema(committed_schema(topic))


def test_a_dispatch_job_from_the_code_validates_against_its_published_schema() -> None:
    job = dispatch_job()
    for topic in (Topic.DISPATCH_MEDICAL, Topic.DISPATCH_POLICE):
        validator(topic).validate(as_json(job))
    bad = {**as_json(job), "priority": "P9"}
    with pytest.raises(ValidationError):
        validator(Topic.DISPATCH_MEDICAL).validate(bad)
    missing = {k: v for k, v in as_json(job).items() if k != "resolve_by"}
    with pytest.raises(ValidationError):
        validator(Topic.DISPATCH_MEDICAL).validate(missing)


def test_the_briefs_status_event_is_accepted_by_schema_and_model() -> None:
    event = {
        "event_id": "medical-evt-1",
        "request_id": "req-1",
        "department": "medical",
        "status": "acknowledged",
        "note": "team on the way",
        "actor": "medical-team-7",
        "occurred_at": "2026-01-09T14:05:00+08:00",
    }
    validator(Topic.STATUS).validate(event)
    StatusEvent.model_validate(event)
    with pytest.raises(ValidationError):
        validator(Topic.STATUS).validate({**event, "status": "done"})


def test_partner_inbound_takes_a_help_request_or_a_survey_answer() -> None:
    request = PartnerHelpRequest.model_validate(
        {
            "category": "food_supply",
            "description": "家里没有菜了",
            "contact": {"phone": "0371-12345678"},
            "partner_id": "hotline-12345",
            "external_id": "H-1",
        }
    )
    answer = SurveyAnswer(request_id="req-1", satisfied=True)
    check = validator(Topic.PARTNER_INBOUND)
    check.validate(as_json(request))
    check.validate(as_json(answer))
    with pytest.raises(ValidationError):
        check.validate({"request_id": "req-1"})
    assert set(values.PARTNER_EVENT_TYPES.values()) == {PartnerHelpRequest, SurveyAnswer}
    # The documented ce_type is the one intake tells survey answers apart by.
    assert intake_handlers.SURVEY_ANSWER_TYPE == values.SURVEY_ANSWER_TYPE


def test_asyncapi_covers_every_topic_and_its_references_resolve() -> None:
    document = json.loads((CONTRACTS / "asyncapi.json").read_text(encoding="utf-8"))
    assert document["asyncapi"].startswith("3.")
    assert set(document["channels"]) == {t.value for t in Topic}
    refs: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                refs.append(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(document)
    assert refs
    for ref in refs:
        assert ref.startswith("#/"), ref
        node: Any = document
        for part in ref[2:].split("/"):
            assert part in node, f"unresolved {ref}"
            node = node[part]
    dlq = document["channels"]["help.dlq.route"]["messages"]
    assert list(dlq) == ["DeadLetter"]
    assert "dlq_origin_offset" in document["components"]["schemas"]["DeadLetterHeaders"]["required"]
    headers = document["components"]["schemas"]["CloudEventsHeaders"]
    assert {"ce_id", "ce_type", "ce_source", "ce_specversion", "ce_time", "ce_subject"} == set(
        headers["required"]
    )
    # Departments and partners find who produces and who consumes their topics.
    actions = {(op["action"], op["channel"]["$ref"]) for op in document["operations"].values()}
    assert ("send", "#/channels/help.dispatch.medical") in actions
    assert ("receive", "#/channels/help.requests.submitted") in actions


def test_openapi_documents_of_the_four_services() -> None:
    for service in ("intake", "verify", "route", "notify"):
        document = json.loads((CONTRACTS / "openapi" / f"{service}.json").read_text())
        assert document["openapi"].startswith("3.")
        assert {"/healthz", "/readyz", "/metrics"} <= set(document["paths"]), service
    intake = json.loads((CONTRACTS / "openapi" / "intake.json").read_text())
    assert "post" in intake["paths"]["/v1/requests"]
