"""The shared stage policy: dead letters for what can never succeed, retries for the rest."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest
from pymongo.errors import AutoReconnect, OperationFailure

from shared.schemas import StatusEvent
from shared.stage import PermanentError, Record, Stage, StageHaltedError
from shared.topics import Topic

pytestmark = pytest.mark.unit


class RecordingBus:
    """Stands in for EventBus: keeps what would have been published."""

    def __init__(self) -> None:
        self.sent: list[tuple[Topic, bytes, bytes | str | None, dict[str, str]]] = []
        self.source = "test"

    def declare(self, topic: Topic, *, schema: Any = None) -> None:
        pass

    async def emit_raw(
        self, topic: Topic, value: bytes, *, key: bytes | str | None, headers: Mapping[str, str]
    ) -> None:
        self.sent.append((topic, value, key, dict(headers)))


def record(value: bytes, offset: int = 7) -> Record:
    return Record(
        topic="help.status",
        partition=2,
        offset=offset,
        key=b"r1",
        value=value,
        headers={"ce_id": "e1"},
        timestamp_ms=0,
    )


def make_stage(bus: RecordingBus, **kw: Any) -> Stage:
    return Stage(service="route", bus=bus, retry_initial_seconds=0.0, retry_max_seconds=0.0, **kw)  # type: ignore[arg-type]


class Failing:
    """A record handler that raises ``errors`` one a call, then returns (or raises ``then``
    from there on); ``calls`` counts the calls."""

    def __init__(self, *errors: Exception, then: Exception | None = None) -> None:
        self.errors = errors
        self.then = then
        self.calls = 0

    async def __call__(self, r: Record) -> None:
        self.calls += 1
        if self.calls <= len(self.errors):
            raise self.errors[self.calls - 1]
        if self.then is not None:
            raise self.then


async def parse_status(r: Record) -> None:
    r.parse(StatusEvent)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"\xff\xfe", "invalid_utf8"),
        (b"{not json", "invalid_json"),
        (b'{"event_id": "x"}', "schema_violation"),
        (b"x" * 300_000, "oversized"),
    ],
)
async def test_unprocessable_records_are_dead_lettered_with_origin(
    value: bytes, reason: str
) -> None:
    bus = RecordingBus()
    await make_stage(bus).process(record(value), parse_status)
    [(topic, sent_value, key, headers)] = bus.sent
    assert topic == Topic.DLQ_ROUTE
    assert sent_value == value
    assert key == b"r1"
    assert headers["dlq_reason"] == reason
    assert headers["dlq_origin_topic"] == "help.status"
    assert headers["dlq_origin_partition"] == "2"
    assert headers["dlq_origin_offset"] == "7"
    assert headers["ce_id"] == "e1", "original headers are kept"


async def test_unexpected_errors_are_dead_lettered_not_raised() -> None:
    bus = RecordingBus()

    async def buggy(r: Record) -> None:
        raise ZeroDivisionError

    await make_stage(bus).process(record(b"{}"), buggy)
    assert bus.sent[0][3]["dlq_reason"] == "unexpected_error"


async def test_transient_failures_raise_so_the_offset_does_not_advance() -> None:
    bus = RecordingBus()
    flaky = Failing(AutoReconnect("database away"), AutoReconnect("database away"))
    stage = make_stage(bus)
    for _ in range(2):
        with pytest.raises(AutoReconnect):
            await stage.process(record(b"{}"), flaky)
    await stage.process(record(b"{}"), flaky)
    assert flaky.calls == 3
    assert bus.sent == [], "a transient failure is never dead-lettered"


async def test_attempts_are_counted_into_the_dead_letter() -> None:
    bus = RecordingBus()
    flaky_then_bad = Failing(AutoReconnect("away"), then=PermanentError("unknown_leg"))
    stage = make_stage(bus)
    with pytest.raises(AutoReconnect):
        await stage.process(record(b"{}"), flaky_then_bad)
    await stage.process(record(b"{}"), flaky_then_bad)
    assert bus.sent[0][3]["dlq_attempts"] == "2"


async def test_dead_letter_limit_halts_the_stage() -> None:
    bus = RecordingBus()
    stage = make_stage(bus, dlq_consecutive_limit=3)

    async def bad(r: Record) -> None:
        raise PermanentError("bad")

    for offset in range(3):
        await stage.process(record(b"{}", offset), bad)
    with pytest.raises(StageHaltedError):
        await stage.process(record(b"{}", 3), bad)
    assert stage.halted
    assert len(bus.sent) == 3, "the record that hit the limit is not dead-lettered"
    with pytest.raises(StageHaltedError):
        await asyncio.wait_for(stage.process(record(b"{}", 4), parse_status), timeout=5)


async def test_a_success_resets_the_consecutive_count() -> None:
    bus = RecordingBus()
    stage = make_stage(bus, dlq_consecutive_limit=2)

    async def bad(r: Record) -> None:
        raise PermanentError("bad")

    async def good(r: Record) -> None:
        return None

    for offset in range(6):
        await stage.process(record(b"{}", offset), bad if offset % 2 == 0 else good)
    assert not stage.halted


async def test_a_locked_database_is_retried_not_dead_lettered() -> None:
    bus = RecordingBus()
    locked_once = Failing(OperationFailure("database is locked (5) (SQLITE_BUSY)", code=1))
    stage = make_stage(bus)
    with pytest.raises(OperationFailure):
        await stage.process(record(b"{}"), locked_once)
    await stage.process(record(b"{}"), locked_once)
    assert bus.sent == []


async def test_a_server_internal_error_is_retried_then_dead_lettered() -> None:
    bus = RecordingBus()
    cut_short = OperationFailure(
        "sql: transaction has already been committed or rolled back",
        code=1,
        details={"codeName": "InternalError"},
    )

    async def failing(r: Record) -> None:
        raise cut_short

    stage = make_stage(bus)
    for _ in range(stage.suspect_attempt_limit - 1):
        with pytest.raises(OperationFailure):
            await stage.process(record(b"{}"), failing)
    assert bus.sent == []
    await stage.process(record(b"{}"), failing)  # the last attempt: dead-lettered
    assert bus.sent[0][3]["dlq_reason"] == "retries_exhausted"
    assert bus.sent[0][3]["dlq_attempts"] == str(stage.suspect_attempt_limit)


async def test_a_server_internal_error_that_passes_is_not_dead_lettered() -> None:
    bus = RecordingBus()
    cut_short = OperationFailure("transaction has already been rolled back", code=1)
    once = Failing(cut_short, cut_short)
    stage = make_stage(bus)
    for _ in range(2):
        with pytest.raises(OperationFailure):
            await stage.process(record(b"{}"), once)
    await stage.process(record(b"{}"), once)
    assert bus.sent == []
    assert once.calls == 3


async def test_other_database_errors_are_dead_lettered() -> None:
    bus = RecordingBus()

    async def refused(r: Record) -> None:
        raise OperationFailure("unsupported operator", code=2)

    await make_stage(bus).process(record(b"{}"), refused)
    assert bus.sent[0][3]["dlq_reason"] == "unexpected_error"


async def test_a_permanent_error_carries_its_attempts_and_headers_into_the_dead_letter() -> None:
    bus = RecordingBus()

    async def gave_up(r: Record) -> None:
        raise PermanentError(
            "delivery_failed", "sms:verified:x", attempts=3, headers={"notify_channel": "sms"}
        )

    stage = make_stage(bus)
    await stage.process(record(b"{}"), gave_up)
    headers = bus.sent[0][3]
    assert headers["dlq_reason"] == "delivery_failed"
    assert headers["dlq_attempts"] == "3", "the stage's own attempts give way to the effect's"
    assert headers["notify_channel"] == "sms"
