"""Structured logging: one JSON object per line with service, stage and ids, never personal data."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",
}
# Fields allowed into structured logs. Anything else passed in `extra` is dropped, so a
# careless call cannot put a phone number or a name into the logs.
_ALLOWED = {
    "request_id",
    "event_id",
    "leg_id",
    "topic",
    "partition",
    "offset",
    "reason",
    "error",
    "stage",
    "status",
    "department",
    "team_id",
    "channel",
    "priority",
    "category",
    "trace_id",
    "attempt",
    "partner_id",
    "route",
    "method",
    "http_status",
    "duration_ms",
    "count",
}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key in _ALLOWED:
                payload[key] = value
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, ensure_ascii=False, default=str)


def configure(service: str, *, level: str = "INFO", fmt: str = "json") -> None:
    """Send all logs to stderr, as JSON lines (or text for a terminal)."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter(service))
    else:
        handler.setFormatter(
            logging.Formatter(f"%(asctime)s {service} %(levelname)s %(name)s: %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiokafka", "pymongo", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # FastStream attaches its own coloured handler; send its lines through ours instead.
    for name in ("faststream", "faststream.access", "faststream.access.kafka"):
        own = logging.getLogger(name)
        own.handlers[:] = []
        own.propagate = True
