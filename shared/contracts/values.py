"""What every topic carries: its value model(s), its description and its key, and the JSON
Schema (draft 2020-12) of its value, from the pydantic models in :mod:`shared.schemas`."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from shared.envelope import EVENT_TYPE_PREFIX
from shared.schemas import (
    DispatchJob,
    InfoAdded,
    LifecycleEvent,
    NotificationRecord,
    PartnerHelpRequest,
    RejectedRequest,
    ReviewRequest,
    StatusEvent,
    SubmittedRequest,
    SurveyAnswer,
    VerifiedRequest,
)
from shared.topics import DISPATCH_TOPICS, SERVICES, Topic

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

# The value model(s) of every topic; dead-letter topics carry the original bytes (no model).
TOPIC_MODELS: dict[Topic, tuple[type[BaseModel], ...]] = {
    Topic.PARTNER_INBOUND: (PartnerHelpRequest, SurveyAnswer),
    Topic.SUBMITTED: (SubmittedRequest,),
    Topic.SUBMITTED_PRIORITY: (SubmittedRequest,),
    Topic.VERIFIED: (VerifiedRequest,),
    Topic.VERIFIED_PRIORITY: (VerifiedRequest,),
    Topic.REVIEW: (ReviewRequest,),
    Topic.REJECTED: (RejectedRequest,),
    **dict.fromkeys(DISPATCH_TOPICS, (DispatchJob, InfoAdded)),
    Topic.STATUS: (StatusEvent,),
    Topic.NOTIFICATIONS: (NotificationRecord,),
    Topic.LIFECYCLE: (LifecycleEvent,),
    Topic.DLQ_INTAKE: (),
    Topic.DLQ_VERIFY: (),
    Topic.DLQ_ROUTE: (),
    Topic.DLQ_NOTIFY: (),
}

# On help.partner.inbound the ce_type header tells which of the two values a record carries.
PARTNER_REQUEST_TYPE = f"{EVENT_TYPE_PREFIX}partner.request.v1"
SURVEY_ANSWER_TYPE = f"{EVENT_TYPE_PREFIX}survey.answer.v1"
# On help.dispatch.<department> the ce_type of a citizen's addition (anything else: a job).
INFO_ADDED_TYPE = f"{EVENT_TYPE_PREFIX}leg.info_added.v1"
PARTNER_EVENT_TYPES: dict[str, type[BaseModel]] = {
    PARTNER_REQUEST_TYPE: PartnerHelpRequest,
    SURVEY_ANSWER_TYPE: SurveyAnswer,
}

TOPIC_DESCRIPTIONS: dict[Topic, str] = {
    Topic.PARTNER_INBOUND: (
        "Partner agencies (the 12345 hotline, hospitals, community grid systems) post help "
        "requests and call-back survey answers here. Key: the partner's external id (or the "
        "request id for a survey answer). The ce_type header tells the value: "
        f"`{SURVEY_ANSWER_TYPE}` → SurveyAnswer (read by notify); any other type, "
        f"conventionally `{PARTNER_REQUEST_TYPE}` → PartnerHelpRequest (read by intake)."
    ),
    Topic.SUBMITTED: "Accepted requests, as they came in. Written by intake, read by verify.",
    Topic.SUBMITTED_PRIORITY: (
        "Accepted requests that look urgent at intake (green channel, life-threatening words), "
        "so verification never leaves them behind a backlog. Same value as "
        "help.requests.submitted."
    ),
    Topic.VERIFIED: "Checked and triaged requests. Written by verify, read by route.",
    Topic.VERIFIED_PRIORITY: (
        "Checked requests that are urgent (P1, P2 or green channel), so dispatch never leaves "
        "them behind a backlog. Written by verify, read by route in a consumer group of its "
        "own. Same value as help.requests.verified."
    ),
    Topic.REVIEW: "Requests a human verifier must look at. Written by verify.",
    Topic.REJECTED: "Refused requests with reason codes (duplicates included). Written by verify.",
    Topic.STATUS: (
        "Departmental systems report acknowledgements, progress and outcomes of a request or "
        "one of its legs here. Key: the request id. Read by route."
    ),
    Topic.NOTIFICATIONS: "The outcome of every delivery attempt to a citizen. Written by notify.",
    Topic.LIFECYCLE: (
        "Request-level state changes after dispatch (acknowledged, in_progress, needs_info, "
        "resolved, escalated, reopened, closed — closed_without_answer when the survey expired)."
    ),
}
for _topic in DISPATCH_TOPICS:
    TOPIC_DESCRIPTIONS[_topic] = (
        f"One leg of a request for the {_topic.value.rsplit('.', 1)[-1]} department's teams, with "
        "its service-level deadlines (DispatchJob), and what a citizen added after the "
        f"department reported needs_info (InfoAdded, ce_type `{INFO_ADDED_TYPE}`). Written by "
        "route; the department's systems subscribe."
    )
for _service in SERVICES:
    TOPIC_DESCRIPTIONS[Topic(f"help.dlq.{_service}")] = (
        f"Records {_service} can never process: the original key, bytes and headers, plus dlq_* "
        "headers with the reason and the origin (topic, partition, offset)."
    )


def key_description(topic: Topic) -> str:
    if topic is Topic.PARTNER_INBOUND:
        return "The partner's external id (the request id for a survey answer)."
    if topic.value.startswith("help.dlq."):
        return "The original record's key."
    return "The request id: one request's events stay in order on one partition."


def topic_schema(topic: Topic) -> dict[str, Any]:
    """The JSON Schema of ``topic``'s value (draft 2020-12)."""
    models = TOPIC_MODELS[topic]
    if not models:
        raise ValueError(f"{topic} carries the original bytes of a dead record; no schema")
    header = {
        "$schema": JSON_SCHEMA_DIALECT,
        "title": f"{topic.value} value",
        "description": TOPIC_DESCRIPTIONS[topic],
        "x-topic": topic.value,
        "x-key": key_description(topic),
    }
    if len(models) == 1:
        schema = models[0].model_json_schema(mode="validation")
        body = {k: v for k, v in schema.items() if k not in ("title", "description")}
        return {**header, "x-model": models[0].__name__, **body}
    _, defs = models_json_schema(
        [(m, "validation") for m in models], ref_template="#/$defs/{model}"
    )
    return {
        **header,
        "anyOf": [{"$ref": f"#/$defs/{m.__name__}"} for m in models],
        **defs,
    }


def topic_schemas() -> dict[Topic, dict[str, Any]]:
    return {topic: topic_schema(topic) for topic, models in TOPIC_MODELS.items() if models}
