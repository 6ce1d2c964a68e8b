"""The published contract, generated from the code: ``python -m shared.contracts`` (``make
contracts``) writes

- ``contracts/schemas/<topic>.schema.json``: a JSON Schema (draft 2020-12) for the value of every
  topic, from the pydantic models in :mod:`shared.schemas`;
- ``contracts/asyncapi.json``: an AsyncAPI 3.0 document for all topics — payloads, keys,
  CloudEvents headers, dead-letter headers, and which service sends or receives what (read from
  the four apps' subscribers and publishers);
- ``contracts/openapi/<service>.json``: the OpenAPI document of each service's HTTP app.

Departmental systems and partners in any language build on these files; a test regenerates them
in memory and fails when the committed files differ from the code.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from shared.envelope import (
    CE_CAUSATIONID,
    CE_ID,
    CE_SOURCE,
    CE_SPECVERSION,
    CE_SUBJECT,
    CE_TIME,
    CE_TRACEID,
    CE_TYPE,
    CONTENT_TYPE,
    EVENT_TYPE_PREFIX,
    SPEC_VERSION,
)
from shared.schemas import (
    DispatchJob,
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
from shared.settings import REPO_ROOT, ServiceSettings
from shared.stage import (
    DLQ_AT,
    DLQ_ATTEMPTS,
    DLQ_DETAIL,
    DLQ_ORIGIN_OFFSET,
    DLQ_ORIGIN_PARTITION,
    DLQ_ORIGIN_TOPIC,
    DLQ_REASON,
    DLQ_SERVICE,
)
from shared.topics import DISPATCH_TOPICS, SERVICES, Topic, load_partitions

CONTRACTS_DIR = REPO_ROOT / "contracts"
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
KAFKA_BINDING_VERSION = "0.5.0"

# The value model(s) of every topic; dead-letter topics carry the original bytes (no model).
TOPIC_MODELS: dict[Topic, tuple[type[BaseModel], ...]] = {
    Topic.PARTNER_INBOUND: (PartnerHelpRequest, SurveyAnswer),
    Topic.SUBMITTED: (SubmittedRequest,),
    Topic.SUBMITTED_PRIORITY: (SubmittedRequest,),
    Topic.VERIFIED: (VerifiedRequest,),
    Topic.VERIFIED_PRIORITY: (VerifiedRequest,),
    Topic.REVIEW: (ReviewRequest,),
    Topic.REJECTED: (RejectedRequest,),
    **dict.fromkeys(DISPATCH_TOPICS, (DispatchJob,)),
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
        "Request-level state changes after dispatch (acknowledged, in_progress, resolved, "
        "escalated, reopened, closed)."
    ),
}
for _topic in DISPATCH_TOPICS:
    TOPIC_DESCRIPTIONS[_topic] = (
        f"One leg of a request for the {_topic.value.rsplit('.', 1)[-1]} department's teams, with "
        "its service-level deadlines. Written by route; the department's systems subscribe."
    )
for _service in SERVICES:
    TOPIC_DESCRIPTIONS[Topic(f"help.dlq.{_service}")] = (
        f"Records {_service} can never process: the original key, bytes and headers, plus dlq_* "
        "headers with the reason and the origin (topic, partition, offset)."
    )

_HEADERS_CE: dict[str, Any] = {
    "type": "object",
    "description": "CloudEvents attributes (Kafka protocol binding, binary mode) as headers.",
    "properties": {
        CE_ID: {"type": "string", "description": "Event id; stable across redeliveries."},
        CE_TYPE: {
            "type": "string",
            "description": f"Event type, `{EVENT_TYPE_PREFIX}<name>.v1`.",
            "pattern": "^" + EVENT_TYPE_PREFIX.replace(".", r"\.") + r"[a-z_.]+\.v[0-9]+$",
        },
        CE_SOURCE: {"type": "string", "description": "Producer, e.g. `cityhelp/route`."},
        CE_SPECVERSION: {"type": "string", "const": SPEC_VERSION},
        CE_TIME: {"type": "string", "format": "date-time"},
        CE_SUBJECT: {"type": "string", "description": "The request id (or external id)."},
        CE_TRACEID: {
            "type": "string",
            "description": "Id of the event that started the request's chain.",
        },
        CE_CAUSATIONID: {"type": "string", "description": "Id of the event that caused this."},
        CONTENT_TYPE: {"type": "string", "const": "application/json"},
    },
    "required": [CE_ID, CE_TYPE, CE_SOURCE, CE_SPECVERSION, CE_TIME, CE_SUBJECT],
}
_HEADERS_DLQ: dict[str, Any] = {
    "type": "object",
    "description": "The original record's headers, plus what happened to it.",
    "properties": {
        DLQ_REASON: {
            "type": "string",
            "description": "Reason code (schema_violation, invalid_json, invalid_utf8, oversized, "
            "unexpected_error, retries_exhausted, or a stage's own code).",
        },
        DLQ_DETAIL: {"type": "string", "description": "What failed; never personal data."},
        DLQ_SERVICE: {"type": "string", "enum": list(SERVICES)},
        DLQ_ORIGIN_TOPIC: {"type": "string"},
        DLQ_ORIGIN_PARTITION: {"type": "string", "pattern": "^[0-9]+$"},
        DLQ_ORIGIN_OFFSET: {"type": "string", "pattern": "^[0-9]+$"},
        DLQ_ATTEMPTS: {"type": "string", "pattern": "^[0-9]+$"},
        DLQ_AT: {"type": "string", "format": "date-time"},
    },
    "required": [
        DLQ_REASON,
        DLQ_SERVICE,
        DLQ_ORIGIN_TOPIC,
        DLQ_ORIGIN_PARTITION,
        DLQ_ORIGIN_OFFSET,
        DLQ_AT,
    ],
    "additionalProperties": {"type": "string"},
}


def _key_description(topic: Topic) -> str:
    if topic is Topic.PARTNER_INBOUND:
        return "The partner's external id (the request id for a survey answer)."
    if topic.value.startswith("help.dlq."):
        return "The original record's key."
    return "The request id: one request's events stay in order on one partition."


# --- JSON Schemas -------------------------------------------------------------------------------


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
        "x-key": _key_description(topic),
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


# --- AsyncAPI -----------------------------------------------------------------------------------


def service_topics(apps: Mapping[str, Any]) -> dict[str, dict[str, dict[str, str]]]:
    """What each service's app receives (topic → consumer group) and sends (topic → "").

    Read from the apps' subscribers and publishers, so the document follows the code.
    """
    out: dict[str, dict[str, dict[str, str]]] = {}
    for service, app in apps.items():
        broker = app.state.runtime.broker
        receive = {t: str(s.group_id) for s in broker.subscribers for t in s.topic_names}
        send = dict.fromkeys((p.topic for p in broker.publishers), "")
        out[service] = {
            "receive": dict(sorted(receive.items())),
            "send": dict(sorted(send.items())),
        }
    return out


def asyncapi(service_io: Mapping[str, Mapping[str, Mapping[str, str]]]) -> dict[str, Any]:
    """An AsyncAPI 3.0 document for every topic; ``service_io`` from :func:`service_topics`."""
    partitions = load_partitions(REPO_ROOT / "config" / "topics.toml")
    all_models = sorted(
        {m for models in TOPIC_MODELS.values() for m in models}, key=lambda m: m.__name__
    )
    _, defs = models_json_schema(
        [(m, "validation") for m in all_models], ref_template="#/components/schemas/{model}"
    )
    schemas: dict[str, Any] = dict(defs.get("$defs", {}))
    schemas["CloudEventsHeaders"] = _HEADERS_CE
    schemas["DeadLetterHeaders"] = _HEADERS_DLQ

    messages: dict[str, Any] = {}
    for model in all_models:
        messages[model.__name__] = {
            "name": model.__name__,
            "title": model.__name__,
            "summary": (model.__doc__ or "").strip().splitlines()[0],
            "contentType": "application/json",
            "headers": {"$ref": "#/components/schemas/CloudEventsHeaders"},
            "payload": {"$ref": f"#/components/schemas/{model.__name__}"},
        }
    messages["DeadLetter"] = {
        "name": "DeadLetter",
        "title": "Dead letter",
        "summary": "A record a stage could never process, as it was, with the reason.",
        "contentType": "application/octet-stream",
        "headers": {"$ref": "#/components/schemas/DeadLetterHeaders"},
        "payload": {
            "description": "The original value, byte for byte (often not valid JSON).",
            "type": "string",
            "contentEncoding": "binary",
        },
    }

    channels: dict[str, Any] = {}
    for topic, models in TOPIC_MODELS.items():
        names = [m.__name__ for m in models] or ["DeadLetter"]
        count, replicas = partitions[topic]
        channels[topic.value] = {
            "address": topic.value,
            "description": TOPIC_DESCRIPTIONS[topic],
            "messages": {n: {"$ref": f"#/components/messages/{n}"} for n in names},
            "bindings": {
                "kafka": {
                    "topic": topic.value,
                    "partitions": count,
                    "replicas": replicas,
                    "bindingVersion": KAFKA_BINDING_VERSION,
                }
            },
        }

    operations: dict[str, Any] = {}
    known = {t.value: t for t in Topic}
    for service in SERVICES:
        io = service_io.get(service, {})
        for action in ("receive", "send"):
            for name, group in io.get(action, {}).items():
                if name not in known:
                    raise ValueError(f"{service} {action}s {name!r}, which is not in the contract")
                names = [m.__name__ for m in TOPIC_MODELS[known[name]]] or ["DeadLetter"]
                operations[f"{service}.{action}.{name}"] = {
                    "action": action,
                    "title": f"{service} {action}s {name}",
                    "channel": {"$ref": f"#/channels/{name}"},
                    "messages": [{"$ref": f"#/channels/{name}/messages/{n}"} for n in names],
                    "bindings": {
                        "kafka": {
                            "bindingVersion": KAFKA_BINDING_VERSION,
                            **({"groupId": {"type": "string", "const": group}} if group else {}),
                        }
                    },
                }

    for name, message in messages.items():
        topic_keys = [t for t, ms in TOPIC_MODELS.items() if name in ([m.__name__ for m in ms])]
        key_topic = topic_keys[0] if topic_keys else Topic.DLQ_INTAKE
        message["bindings"] = {
            "kafka": {
                "key": {"type": "string", "description": _key_description(key_topic)},
                "bindingVersion": KAFKA_BINDING_VERSION,
            }
        }

    bootstrap = ServiceSettings.model_fields["kafka_bootstrap"].default
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "City help pipeline",
            "version": "1.0.0",
            "description": (
                "Topics of the city emergency-help pipeline (intake → verify → route → notify). "
                "Every record: key = request id (on help.partner.inbound the partner's external "
                "id), value = UTF-8 JSON, CloudEvents attributes in headers. Dead-letter topics "
                "carry the original bytes. Consumers commit after their effects are stored, so "
                "a record can arrive twice: use ce_id (or the value's ids) to recognise repeats."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": bootstrap,
                "protocol": "kafka",
                "description": "Local development broker (KAFKA_BOOTSTRAP).",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"schemas": schemas, "messages": messages},
    }


# --- OpenAPI ------------------------------------------------------------------------------------


def build_apps() -> dict[str, Any]:
    """The four HTTP apps, built with default settings and no topic prefix; never started."""
    apps: dict[str, Any] = {}
    for service in SERVICES:
        app_module = importlib.import_module(f"services.{service}.app")
        settings_module = importlib.import_module(f"services.{service}.settings")
        settings_cls = getattr(settings_module, f"{service.capitalize()}Settings")
        settings = settings_cls(TOPIC_PREFIX="")
        apps[service] = app_module.build_app(settings, create_topics=False)
    return apps


def openapi_documents(apps: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {service: app.openapi() for service, app in apps.items()}


# --- files --------------------------------------------------------------------------------------


def render(document: Mapping[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def documents() -> dict[str, str]:
    """Every generated file: path relative to ``contracts/`` → its text."""
    apps = build_apps()
    files = {
        f"schemas/{topic.value}.schema.json": render(schema)
        for topic, schema in topic_schemas().items()
    }
    files["asyncapi.json"] = render(asyncapi(service_topics(apps)))
    for service, document in openapi_documents(apps).items():
        files[f"openapi/{service}.json"] = render(document)
    return files


def differences(root: Path = CONTRACTS_DIR) -> list[str]:
    """Files under ``root`` that differ from the code: changed, missing or no longer generated."""
    wanted = documents()
    problems = []
    for rel, text in sorted(wanted.items()):
        path = root / rel
        if not path.exists():
            problems.append(f"missing: contracts/{rel}")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"differs: contracts/{rel}")
    for path in sorted(root.rglob("*.json")) if root.exists() else []:
        rel = path.relative_to(root).as_posix()
        if rel not in wanted:
            problems.append(f"stale: contracts/{rel}")
    return problems


def write(root: Path = CONTRACTS_DIR) -> list[str]:
    """Writes every generated file and removes stale ones; returns the paths written."""
    wanted = documents()
    for path in sorted(root.rglob("*.json")) if root.exists() else []:
        if path.relative_to(root).as_posix() not in wanted:
            path.unlink()
    for rel, text in wanted.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return sorted(wanted)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 on a change")
    args = parser.parse_args(argv)
    if args.check:
        problems = differences()
        for problem in problems:
            print(problem)
        if problems:
            print("contracts/ is out of date: run make contracts")
        return 1 if problems else 0
    written = write()
    print(f"wrote {len(written)} files under {CONTRACTS_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
