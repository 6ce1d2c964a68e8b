"""Malformed records for every topic a stage consumes, and what each consumer must do with them
(a dead letter, or ignored by a rule of its design)."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from shared.contracts.values import TOPIC_MODELS
from shared.envelope import CE_TYPE
from shared.schemas import (
    SurveyAnswer,
)
from shared.topics import DISPATCH_TOPICS, ServiceName, Topic
from tests.chaos.credentials import SURVEY_TYPE
from tests.chaos.http_strategies import encode, generate, junk_json

# --- Kafka: malformed records on every input topic ------------------------------------------------

# Who consumes what (services/*/app.py): service and consumer-group name per input topic.
CONSUMERS: dict[Topic, tuple[tuple[ServiceName, str], ...]] = {
    Topic.PARTNER_INBOUND: (("intake", "intake"), ("notify", "notify-survey")),
    Topic.SUBMITTED: (("verify", "verify"), ("notify", "notify")),
    Topic.SUBMITTED_PRIORITY: (("verify", "verify-priority"), ("notify", "notify-priority")),
    Topic.VERIFIED: (("route", "route"), ("notify", "notify")),
    Topic.VERIFIED_PRIORITY: (("route", "route-priority"), ("notify", "notify-priority")),
    Topic.REVIEW: (("notify", "notify"),),
    Topic.REJECTED: (("notify", "notify"),),
    **dict.fromkeys(DISPATCH_TOPICS, (("notify", "notify"),)),
    Topic.STATUS: (("route", "route-status"),),
    Topic.LIFECYCLE: (("route", "route-lifecycle"), ("notify", "notify")),
}
# The value model each consumed topic is checked against (the first where a topic has two).
MODELS: dict[Topic, type[BaseModel]] = {topic: TOPIC_MODELS[topic][0] for topic in CONSUMERS}

# Records a consumer skips on purpose, and the rule that says so.
IGNORED_RULES = {
    "notify_not_survey": "notify takes only survey answers (ce_type survey.answer) from "
    "help.partner.inbound — services/notify/surveys.py handle_partner_inbound",
    "intake_survey": "intake leaves survey answers on help.partner.inbound to notify — "
    "services/intake/handlers.py handle_partner_record",
    "route_lifecycle_others": "route acts only on reopened/closed lifecycle events from "
    "others — services/route/handlers/lifecycle.py handle_lifecycle",
    "notify_closed_reopened": "closed/reopened are recorded by notify's own survey, not "
    "announced — config/notify.toml [events] lifecycle",
}

Outcome = Literal["dlq"] | str


@dataclass(frozen=True)
class BadRecord:
    topic: Topic
    kind: str
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]
    lifecycle_status: str = ""


def expected(service: ServiceName, record: BadRecord) -> Outcome:
    """What ``service`` must do with ``record``: "dlq", or the name of the rule that skips it."""
    survey = any(k == CE_TYPE and v == SURVEY_TYPE.encode() for k, v in record.headers)
    if record.topic == Topic.PARTNER_INBOUND:
        if service == "intake":
            return "intake_survey" if survey else "dlq"
        return "dlq" if survey else "notify_not_survey"
    if record.topic == Topic.LIFECYCLE and record.kind == "unknown_id":
        closing = record.lifecycle_status in ("closed", "reopened")
        if service == "route":
            return "dlq" if closing else "route_lifecycle_others"
        return "notify_closed_reopened" if closing else "dlq"
    return "dlq"


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def template(topic: Topic, request_id: str) -> dict[str, Any]:
    """A schema-valid value for ``topic`` about an unknown request and without a contact,
    so that no consumer can act on it (mutated into the wrong-schema records)."""
    now, later = now_iso(), (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    contact = {"phone": "+8613900000000"}
    location = {"district": "jinshui"}
    if topic == Topic.PARTNER_INBOUND:
        return {
            "category": "food_supply",
            "description": "需要买菜",
            "contact": contact,
            "partner_id": "no-such-partner",
            "external_id": request_id,
        }
    if topic in (Topic.SUBMITTED, Topic.SUBMITTED_PRIORITY):
        return {
            "request_id": request_id,
            "submitted_at": now,
            "channel": "web",
            "tracking_token_hash": "0" * 64,
            "request": {"category": "food_supply", "description": "需要买菜", "contact": contact},
        }
    if topic in (Topic.VERIFIED, Topic.VERIFIED_PRIORITY):
        return {
            "request_id": request_id,
            "submitted_at": now,
            "verified_at": now,
            "channel": "web",
            "category": "food_supply",
            "description": "需要买菜",
            "contact": contact,
            "location": location,
            "priority": "P3",
        }
    if topic == Topic.REVIEW:
        return {
            "request_id": request_id,
            "submitted_at": now,
            "flagged_at": now,
            "category": "food_supply",
            "priority": "P3",
            "reasons": ["phone_invalid"],
        }
    if topic == Topic.REJECTED:
        return {
            "request_id": request_id,
            "submitted_at": now,
            "rejected_at": now,
            "reasons": ["abuse"],
        }
    if topic in DISPATCH_TOPICS:
        return {
            "leg_id": f"{request_id}:x",
            "request_id": request_id,
            "department": "police",
            "team_id": "t",
            "priority": "P3",
            "category": "transport",
            "description": "d",
            "contact": contact,
            "location": location,
            "submitted_at": now,
            "dispatched_at": now,
            "acknowledge_by": later,
            "resolve_by": later,
            "rule_version": "v",
            "rule_id": "r",
        }
    if topic == Topic.STATUS:
        return {
            "event_id": str(uuid.uuid4()),
            "request_id": request_id,
            "department": "medical",
            "status": "acknowledged",
            "occurred_at": now,
        }
    return {
        "event_id": str(uuid.uuid4()),
        "request_id": request_id,
        "status": "acknowledged",
        "at": now,
        "actor": "citizen",
    }


def _valid(topic: Topic, value: bytes) -> bool:
    try:
        MODELS[topic].model_validate_json(value)
    except (ValidationError, ValueError):
        return False
    return True


def ce_headers(topic: Topic) -> list[tuple[str, bytes | None]]:
    return [
        ("ce_id", str(uuid.uuid4()).encode()),
        ("ce_type", b"city.help.chaos.v1"),
        ("ce_source", b"chaos/bad-input"),
        ("ce_specversion", b"1.0"),
        ("ce_time", now_iso().encode()),
        ("ce_subject", topic.value.encode()),
    ]


def _garbage_headers(rng: random.Random) -> list[tuple[str, bytes | None]]:
    choices: list[list[tuple[str, bytes | None]]] = [
        [("ce_id", b"\xff\xfe\xfd"), ("ce_time", b"yesterday"), ("ce_type", b"\x00\x01")],
        [("ce_time", b"9999-99-99T99:99:99"), ("ce_specversion", b"0.0"), ("ce_id", b"")],
        [("ce_type", "类型".encode("gbk")), ("ce_source", b"\x80" * 100)],
        [("ce_subject", b"x" * 20_000), ("ce_id", b"x" * 5_000)],
        [("content-type", b"application/x-protobuf"), ("ce_datacontenttype", b"\xc3\x28")],
        [("ce_id", b"1"), ("ce_id", b"2"), ("ce_type", b"")],
        [("correlation_id", b"\xff"), ("reply_to", b"\xfe\xff"), ("ce_time", b"\xff")],
        [("ce_id", None), ("ce_type", None), ("x-null", None)],  # null header values
    ]
    return rng.choice(choices)


def bad_records(topic: Topic, count: int, *, seed: int) -> list[BadRecord]:
    """``count`` malformed records for ``topic``, every kind in turn."""
    rng = random.Random(f"{seed}:{topic.value}")
    junk = generate(junk_json(), max(10, count // 4), seed=seed)
    kinds = [
        "not_json",
        "invalid_utf8",
        "wrong_schema",
        "wrong_schema",
        "empty",
        "tombstone",
        "garbage_headers",
        "unknown_id",
    ]
    if topic == Topic.PARTNER_INBOUND:
        kinds.append("survey_junk")
    lanes = (Topic.SUBMITTED, Topic.SUBMITTED_PRIORITY, Topic.VERIFIED, Topic.VERIFIED_PRIORITY)
    if topic in (*lanes, *DISPATCH_TOPICS):
        kinds.remove("unknown_id")  # self-contained events: an unknown id is a new request
    out: list[BadRecord] = []
    for i in range(count):
        # Oversized records are heavy (each > 256 KiB, copied to every dead-letter topic): one
        # in fifty, and at least one per topic.
        kind = (
            "oversized"
            if i % 50 == 49 or (i == count - 1 and count < 50)
            else kinds[i % len(kinds)]
        )
        request_id = str(uuid.uuid4())
        key: bytes | None = request_id.encode() if i % 5 else None
        headers = ce_headers(topic)
        value: bytes | None
        status = ""
        if kind == "not_json":
            value = (
                rng.choice(
                    [
                        b"not json",
                        b"{'single': 'quotes'}",
                        b"<xml/>",
                        b'{"a": 1',
                        b"[1, 2",
                        b"NaN",
                        b"\x00\x01\x02",
                    ]
                )
                + str(i).encode()
            )
        elif kind == "invalid_utf8":
            value = (
                b'{"request_id": "' + bytes([0xFF, 0xC3, 0x28, rng.randrange(0x80, 0xFF)]) + b'"}'
            )
        elif kind in ("wrong_schema", "garbage_headers", "survey_junk"):
            value = _wrong_schema(topic, request_id, junk, rng)
            if kind == "garbage_headers":
                headers = _garbage_headers(rng) + ([] if i % 3 else headers)
            if kind == "survey_junk":
                headers = [(k, SURVEY_TYPE.encode() if k == CE_TYPE else v) for k, v in headers]
                value = rng.choice(
                    [
                        value,
                        b"not a survey",
                        encode({"request_id": request_id, "satisfied": "maybe"}, "ascii"),
                    ]
                )
        elif kind == "empty":
            value = b""
        elif kind == "tombstone":
            value, key = None, request_id.encode()  # a tombstone needs a key
        elif kind == "oversized":
            doc = template(topic, request_id)
            doc["description" if "description" in doc else "padding"] = "超" * 100_000
            value = encode(doc, "utf8")
        else:  # unknown_id
            doc = template(topic, request_id)
            if topic == Topic.LIFECYCLE:
                status = ("closed", "reopened", "acknowledged", "escalated")[i // len(kinds) % 4]
                doc["status"] = status
            if topic == Topic.PARTNER_INBOUND and i % 2:
                headers = [(k, SURVEY_TYPE.encode() if k == CE_TYPE else v) for k, v in headers]
                doc = SurveyAnswer(request_id=request_id, satisfied=True).model_dump(mode="json")
            value = encode(doc, "ascii")
        out.append(BadRecord(topic, kind, key, value, tuple(headers), status))
    return out


def _wrong_schema(topic: Topic, request_id: str, junk: list[Any], rng: random.Random) -> bytes:
    """JSON that is not a valid value for ``topic`` (checked against the schema)."""
    base = template(topic, request_id)
    for _ in range(20):
        doc: Any = base
        for _ in range(rng.randint(1, 3)):
            fields = [*base.keys(), "unexpected"]
            name = rng.choice(fields)
            if rng.random() < 0.3 and name in doc:
                doc = {k: v for k, v in doc.items() if k != name}
            else:
                doc = {**doc, name: rng.choice(junk)}
        if rng.random() < 0.1:
            doc = rng.choice(junk)
        value = encode(doc, rng.choice(["ascii", "utf8"]))
        if not _valid(topic, value):
            return value
    # Mutations that happened to stay valid: drop the required request id (or event id).
    return encode({k: v for k, v in base.items() if k not in ("request_id", "partner_id")}, "ascii")
