"""The AsyncAPI 3.0 document of every topic: payloads, keys, CloudEvents headers, dead-letter
headers, and which service sends or receives what (read from the apps it is given)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic.json_schema import models_json_schema

from shared.contracts.values import TOPIC_DESCRIPTIONS, TOPIC_MODELS, key_description
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
from shared.topics import SERVICES, Topic, load_partitions

KAFKA_BINDING_VERSION = "0.5.0"

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
                "key": {"type": "string", "description": key_description(key_topic)},
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
