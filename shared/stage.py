"""What every stage shares about one record: parsing, the failure policy, dead letters.

Every subscriber consumes batches (:data:`BATCHES`) through the batch runner
(``shared/batch.py``), which commits a batch's offsets only after its effects are stored and
its events acknowledged by the broker. Two kinds of failure:

- a record that can never succeed (:class:`PermanentError`, or an unexpected error) goes to the
  service's dead-letter topic with its original bytes and headers, the reason and its origin;
  the stage moves on;
- a transient failure (database or broker unavailable) is retried with back-off: the batch is
  rewound and comes again.

Too many consecutive dead letters stop the stage (it stops consuming and reports not ready)
rather than drain a topic into the dead letters after a bad deploy.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, TypeVar

from aiokafka.errors import KafkaError
from faststream import AckPolicy
from faststream.kafka import KafkaMessage
from pydantic import BaseModel, ValidationError
from pymongo.errors import ConnectionFailure, OperationFailure, WriteConcernError

from shared.envelope import Envelope, decode_headers, utcnow
from shared.kafka import EventBus
from shared.metrics import (
    DEAD_LETTERS,
    MESSAGES_FAILED,
    MESSAGES_PROCESSED,
    MESSAGES_RECEIVED,
    PROCESSING_SECONDS,
    STAGE_HALTED,
)
from shared.retry import Backoff
from shared.topics import ServiceName, dlq_topic

logger = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)


async def raw_body(message: Any) -> Any:
    """FastStream decoder that hands the handler the record's bytes untouched: parsing is the
    stage's job, so that bad bytes become a dead letter rather than a framework error."""
    return message.body


async def batch_parser(message: Any, original: Callable[[Any], Awaitable[Any]]) -> Any:
    """FastStream's Kafka batch parser, letting through header values that are not UTF-8 (or
    null).

    FastStream decodes header values as strict UTF-8 and, on one that is not, dropped the
    record before any handler ran — no dead letter, its offset committed with the next one.
    Such values are handed on backslash-escaped (as :func:`shared.envelope.decode_headers`
    shows them), so the stage dead-letters or processes the record like any other.
    """
    if isinstance(message, tuple):
        message = tuple([_utf8_headers(record) for record in message])
    return await original(message)


def _utf8_headers(record: Any) -> Any:
    headers = list(getattr(record, "headers", None) or ())
    try:
        for _, value in headers:
            value.decode("utf-8")
    except (UnicodeDecodeError, AttributeError):
        return dataclasses.replace(
            record,
            headers=[
                (name, b"" if value is None else value.decode("utf-8", "backslashreplace").encode())
                for name, value in headers
            ],
        )
    return record


# Subscriber options for every stage: batches with manual offsets, which the batch runner
# commits per partition after the whole batch's effects are stored and its events acknowledged
# (shared/batch.py). Stages never answer requests: without `no_reply`, FastStream publishes
# the handler's result to whatever topic a record's `reply_to` header names (a producer could
# write into any topic; a bad name failed the record forever and stalled its partition).
BATCHES: Final[dict[str, Any]] = {
    "ack_policy": AckPolicy.MANUAL,
    "auto_offset_reset": "earliest",
    "decoder": raw_body,
    "parser": batch_parser,
    "no_reply": True,
    "batch": True,
}

MAX_VALUE_BYTES: Final = 256 * 1024

# DLQ header names.
DLQ_REASON = "dlq_reason"
DLQ_DETAIL = "dlq_detail"
DLQ_SERVICE = "dlq_service"
DLQ_ORIGIN_TOPIC = "dlq_origin_topic"
DLQ_ORIGIN_PARTITION = "dlq_origin_partition"
DLQ_ORIGIN_OFFSET = "dlq_origin_offset"
DLQ_ATTEMPTS = "dlq_attempts"
DLQ_AT = "dlq_at"


def dead_letter_headers(
    record: Record, *, service: str, reason: str, detail: str, attempts: int, at: datetime
) -> dict[str, str]:
    """The record's own headers plus what a dead letter says: why, which service, where it
    came from (topic, partition, offset), after how many attempts and when."""
    headers = dict(record.headers)
    headers.update(
        {
            DLQ_REASON: reason,
            DLQ_DETAIL: detail[:1000],
            DLQ_SERVICE: service,
            DLQ_ORIGIN_TOPIC: record.topic,
            DLQ_ORIGIN_PARTITION: str(record.partition),
            DLQ_ORIGIN_OFFSET: str(record.offset),
            DLQ_ATTEMPTS: str(attempts),
            DLQ_AT: at.isoformat(),
        }
    )
    return headers


class PermanentError(Exception):
    """A record that will never succeed: it goes to the dead-letter topic, with ``attempts``
    (of an outside effect the stage tried itself) and ``headers`` (naming that effect)."""

    def __init__(
        self,
        reason: str,
        detail: str = "",
        *,
        attempts: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
        self.attempts = attempts
        self.headers = dict(headers or {})


TRANSIENT_ERRORS: Final = (
    ConnectionFailure,
    WriteConcernError,
    KafkaError,
    asyncio.TimeoutError,
    OSError,
)


# Server answers that say "not now" rather than "never": MongoDB's codes for a primary stepping
# down, a server shutting down, a write conflict or a time limit, and InternalError (1), which
# FerretDB also answers when its SQLite transaction was cut short under load or while the
# database restarted. Retried a bounded number of times (Stage.suspect_attempt_limit), then
# dead-lettered: a server error that persists must not block a partition for ever.
SUSPECT_SERVER_CODES: Final = frozenset(
    {1, 6, 7, 89, 91, 112, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436}
)


def is_transient(exc: BaseException) -> bool:
    """Failures that go away by themselves: retried, never dead-lettered. Besides lost
    connections, the SQLite backend of FerretDB answers "database is locked" under write
    contention as a generic OperationFailure."""
    if isinstance(exc, TRANSIENT_ERRORS):
        return True
    return isinstance(exc, OperationFailure) and "database is locked" in str(exc)


def is_suspect(exc: BaseException) -> bool:
    """A database error that is probably passing: retried a few times before dead-lettering."""
    return isinstance(exc, OperationFailure) and exc.code in SUSPECT_SERVER_CODES


@dataclass(frozen=True, slots=True)
class Record:
    """One consumed Kafka record, as the stage's handlers see it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: dict[str, str]
    timestamp_ms: int

    @classmethod
    def batch(cls, message: KafkaMessage) -> list[Record]:
        """The records of a consumed batch, in the order they came."""
        raw = message.raw_message
        return [cls.of(r) for r in (raw if isinstance(raw, tuple | list) else (raw,))]

    @classmethod
    def of(cls, raw: Any) -> Record:
        """A Kafka consumer record as the stage sees it."""
        return cls(
            topic=raw.topic,
            partition=raw.partition,
            offset=raw.offset,
            key=raw.key,
            value=raw.value or b"",
            headers=decode_headers(raw.headers or ()),
            timestamp_ms=raw.timestamp,
        )

    @property
    def envelope(self) -> Envelope | None:
        return Envelope.from_headers(self.headers)

    def parse(self, model: type[M]) -> M:
        """The value as ``model``; a :class:`PermanentError` naming the problem otherwise."""
        if len(self.value) > MAX_VALUE_BYTES:
            raise PermanentError("oversized", f"{len(self.value)} bytes > {MAX_VALUE_BYTES}")
        try:
            text = self.value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PermanentError("invalid_utf8", str(exc)) from exc
        try:
            return model.model_validate_json(text)
        except ValidationError as exc:
            kinds = sorted({str(e["type"]) for e in exc.errors()})
            fields = sorted({".".join(str(p) for p in e["loc"]) for e in exc.errors()})
            reason = "invalid_json" if "json_invalid" in kinds else "schema_violation"
            raise PermanentError(reason, f"{','.join(kinds)} at {','.join(fields)}"[:500]) from exc


Handler = Callable[[Record], Awaitable[None]]


@dataclass
class Stage:
    """Runs a service's handlers with the shared failure policy and metrics."""

    service: ServiceName
    bus: EventBus
    dlq_consecutive_limit: int = 1000
    retry_initial_seconds: float = 0.5
    retry_max_seconds: float = 15.0
    suspect_attempt_limit: int = 8
    halted: bool = False
    _consecutive_dead: int = 0
    _consecutive_transient: int = 0
    attempts: dict[tuple[str, int, int], int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.bus.declare(dlq_topic(self.service))
        STAGE_HALTED.labels(self.service).set(0)

    async def process(self, record: Record, handler: Handler, *, retry_inline: bool = True) -> None:
        """Handle one record. A transient failure raises (the record is to come again): after
        the back-off here, or at once when the caller (the batch runner) backs off itself."""
        label = topic_label(record.topic)
        if self.halted:
            # Stay stopped: do not commit, do not drain. An operator restarts the stage.
            await asyncio.sleep(self.retry_max_seconds)
            raise StageHaltedError(self.service)
        MESSAGES_RECEIVED.labels(self.service, label).inc()
        started = time.perf_counter()
        origin = (record.topic, record.partition, record.offset)
        try:
            await handler(record)
        except PermanentError as exc:
            await self.refuse(record, exc)
        except Exception as exc:
            attempts = self.attempts.get(origin, 0) + 1
            retry = is_transient(exc) or (is_suspect(exc) and attempts < self.suspect_attempt_limit)
            if not retry:
                # A bug or an input nobody foresaw: one record must not block its partition.
                logger.exception(
                    "unexpected error; dead-lettering the record",
                    extra={
                        "topic": record.topic,
                        "partition": record.partition,
                        "offset": record.offset,
                    },
                )
                reason = "retries_exhausted" if is_suspect(exc) else "unexpected_error"
                await self.dead_letter(record, reason, type(exc).__name__)
                self._consecutive_transient = 0
                self.attempts.pop(origin, None)
                return
            self.attempts[origin] = attempts
            if not retry_inline:
                raise
            self._consecutive_transient += 1
            delay = self.backoff(self._consecutive_transient)
            self.count_failure(label, type(exc).__name__)
            logger.warning(
                "transient failure, retrying in %.1fs",
                delay,
                extra={
                    "topic": record.topic,
                    "partition": record.partition,
                    "offset": record.offset,
                    "error": type(exc).__name__,
                },
            )
            await asyncio.sleep(delay)
            raise
        else:
            self._consecutive_dead = 0
            MESSAGES_PROCESSED.labels(self.service, label, "ok").inc()
        finally:
            PROCESSING_SECONDS.labels(self.service, label).observe(time.perf_counter() - started)
        self._consecutive_transient = 0
        self.attempts.pop(origin, None)

    def backoff(self, failures: int) -> float:
        """Seconds to wait after the given number of transient failures in a row."""
        return Backoff(self.retry_initial_seconds, self.retry_max_seconds).delay(failures)

    def count_failure(self, topic: str, error: str, count: int = 1) -> None:
        MESSAGES_FAILED.labels(self.service, topic, error).inc(count)

    def reset_dead_count(self) -> None:
        """A record went through: the dead letters are no longer consecutive."""
        self._consecutive_dead = 0

    async def refuse(self, record: Record, error: PermanentError) -> None:
        """Dead-letter the record for ``error``, with its attempts and headers."""
        await self.dead_letter(
            record, error.reason, error.detail, attempts=error.attempts, headers=error.headers
        )

    async def dead_letter(
        self,
        record: Record,
        reason: str,
        detail: str,
        *,
        attempts: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Send the record to the service's dead-letter topic (raises
        :class:`StageHaltedError` once too many came in a row)."""
        self._consecutive_dead += 1
        if self._consecutive_dead > self.dlq_consecutive_limit:
            self.halted = True
            STAGE_HALTED.labels(self.service).set(1)
            logger.critical(
                "dead-letter limit reached (%d in a row); the stage stops consuming",
                self.dlq_consecutive_limit,
                extra={
                    "topic": record.topic,
                    "partition": record.partition,
                    "offset": record.offset,
                },
            )
            raise StageHaltedError(self.service)
        if attempts is None:
            attempts = self.attempts.get((record.topic, record.partition, record.offset), 0) + 1
        annotated = dead_letter_headers(
            record,
            service=self.service,
            reason=reason,
            detail=detail,
            attempts=attempts,
            at=utcnow(),
        )
        annotated.update(headers or {})
        await self.bus.emit_raw(
            dlq_topic(self.service), record.value, key=record.key, headers=annotated
        )
        DEAD_LETTERS.labels(self.service, topic_label(record.topic), reason).inc()
        MESSAGES_PROCESSED.labels(self.service, topic_label(record.topic), "dead_lettered").inc()
        logger.warning(
            "record dead-lettered",
            extra={
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "reason": reason,
            },
        )


class StageHaltedError(RuntimeError):
    """Raised while a stage is halted so that FastStream does not commit the record."""

    def __init__(self, service: str) -> None:
        super().__init__(f"{service} halted: dead-letter limit reached; fix the cause and restart")


def topic_label(topic: str) -> str:
    """Topic label for metrics: the contract name without a test prefix."""
    index = topic.find("help.")
    return topic[index:] if index >= 0 else topic
