"""The batch stage runner: each stage decides, then the runner applies a whole batch at once.

A stage consumes batches (up to ``batch_max_records`` records or ``batch_timeout_ms``,
whichever comes first). For every record a pure rule returns a :class:`Plan`: the documents to
insert or update and the events to publish. The runner then applies the plans of the batch:

1. the plans' *guard* inserts (a document keyed by the record's cause) in one unordered
   ``insert_many`` per collection; a guard that already exists means the record was applied
   before (a redelivery, or the same request sent twice), so its plan is dropped and the
   stage's *careful* path (per record, with reads, idempotent) finishes what is missing;
2. the other writes: inserts in one unordered ``insert_many`` per collection (a duplicate
   ``_id`` fails only that document: an insert keyed by its cause is its own idempotence
   check), then updates in ordered ``bulk_write`` commands of at most ``max_statements``;
3. every event and dead letter, sent together and awaited together (acks=all);
4. the offsets, committed explicitly per partition.

Failures: a record that can never succeed (:class:`PermanentError` in its outcome) is
dead-lettered alone and the rest of the batch goes on; a transient failure (database or broker
away) rewinds *every* partition of the batch to its first offset and the batch comes again
after a back-off, so no partition is committed past an unapplied record. An unexpected error
while planning is isolated by planning the batch's records one by one. Effects are keyed by
their cause, so a batch applied twice repeats nothing.

Stages whose rules still act record by record go through :meth:`BatchRunner.each`: the batch's
records are handled concurrently across request ids and in order within one, and the batch is
committed once, with the same failure policy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Final

from aiokafka import TopicPartition

from shared.bulk import MAX_STATEMENTS, BulkWriter
from shared.db import Database
from shared.faults import crash_point
from shared.kafka import EventBus
from shared.metrics import BATCH_RECORDS, BATCH_SECONDS, MESSAGES_PROCESSED, MESSAGES_RECEIVED
from shared.plans import Careful, Deferred, Event, Handler, Outcome, Plan, Planner
from shared.stage import (
    PermanentError,
    Record,
    Stage,
    StageHaltedError,
    is_suspect,
    is_transient,
    topic_label,
)

logger = logging.getLogger(__name__)


# The longest an ordinary batch's step waits for the process's urgent batches (BatchRunner.run).
URGENT_WAIT_SECONDS: Final = 0.05


class _Rewind(Exception):  # noqa: N818 - a control signal, not an error
    """The batch must come again (a transient failure, already logged and counted)."""


def partitions_of(records: Iterable[Record]) -> dict[TopicPartition, tuple[int, int]]:
    """First and last offset of every partition in a batch."""
    spans: dict[TopicPartition, tuple[int, int]] = {}
    for record in records:
        tp = TopicPartition(record.topic, record.partition)
        first, last = spans.get(tp, (record.offset, record.offset))
        spans[tp] = (min(first, record.offset), max(last, record.offset))
    return spans


def by_key(records: Sequence[Record]) -> list[list[Record]]:
    """The batch's records grouped by key, each group in offset order (one request's records
    stay in order; different requests may go concurrently)."""
    groups: dict[tuple[str, int, bytes | None], list[Record]] = defaultdict(list)
    for record in records:
        groups[(record.topic, record.partition, record.key)].append(record)
    return [sorted(group, key=lambda r: r.offset) for group in groups.values()]


@dataclass
class BatchRunner:
    """Applies a stage's batches with the shared delivery policy (see the module docstring)."""

    stage: Stage
    db: Database | None = None
    max_statements: int = MAX_STATEMENTS
    db_timeout_seconds: float = 20.0
    concurrency: int = 64
    # How long an ordinary batch's step waits for the process's urgent batches to finish.
    urgent_wait_seconds: float = URGENT_WAIT_SECONDS
    _failures: int = field(default=0)
    _writer: BulkWriter = field(init=False)
    _urgent: int = field(default=0)
    _no_urgent: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self._writer = BulkWriter(
            self.db, max_statements=self.max_statements, timeout_seconds=self.db_timeout_seconds
        )
        self._no_urgent.set()

    @property
    def bus(self) -> EventBus:
        return self.stage.bus

    # ------------------------------------------------------------------ entry points

    async def run(
        self,
        records: Sequence[Record],
        consumer: Any,
        *,
        plan: Planner,
        careful: Careful,
        urgent: bool = False,
    ) -> None:
        """One consumed batch through ``plan`` (decide) and the apply steps. While an
        ``urgent`` batch (a priority lane's) is in this process, the other batches wait before
        each of their steps, for at most ``urgent_wait_seconds`` a step: the process's event
        loop and its database commands go to the urgent records first, and an ordinary lane
        is slowed, never stopped, by a steady urgent one."""
        for label, count in _count_by_topic(records).items():
            MESSAGES_RECEIVED.labels(self.stage.service, label).inc(count)
        body = partial(self._planned, records, plan, careful, urgent=urgent)
        if not urgent:
            await self._guarded(records, consumer, body)
            return
        self._urgent += 1
        self._no_urgent.clear()
        try:
            await self._guarded(records, consumer, body)
        finally:
            self._urgent -= 1
            if self._urgent == 0:
                self._no_urgent.set()

    async def _give_way(self, urgent: bool) -> None:
        """An ordinary batch's pause before a step while urgent batches are in flight."""
        if urgent or self._no_urgent.is_set():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._no_urgent.wait(), timeout=self.urgent_wait_seconds)

    async def each(self, records: Sequence[Record], consumer: Any, *, handler: Handler) -> None:
        """One consumed batch through a per-record ``handler`` (idempotent, acting itself)."""
        await self._guarded(records, consumer, lambda: self._each(records, handler))

    async def _guarded(
        self, records: Sequence[Record], consumer: Any, body: Callable[[], Awaitable[None]]
    ) -> None:
        """Run ``body`` for the batch, then commit; on any failure, rewind every partition of
        the batch (nothing is committed past an unapplied record) and back off."""
        if not records:
            return
        if self.stage.halted:
            # Stay stopped: do not commit, do not drain. An operator restarts the stage.
            await asyncio.sleep(self.stage.retry_max_seconds)
            _rewind(consumer, records)
            return
        started = time.perf_counter()
        BATCH_RECORDS.labels(self.stage.service).observe(len(records))
        try:
            await body()
            crash_point(f"{self.stage.service}.before_commit")
            await _commit(consumer, records)
        except StageHaltedError:
            _rewind(consumer, records)
            return
        except Exception as exc:
            cause = exc.__cause__ if isinstance(exc, _Rewind) and exc.__cause__ else exc
            if not isinstance(cause, Exception) or not (is_transient(cause) or is_suspect(cause)):
                logger.error("the batch failed unexpectedly; it comes again", exc_info=exc)
            await self._transient(cause, records)
            _rewind(consumer, records)
            return
        self._failures = 0
        BATCH_SECONDS.labels(self.stage.service).observe(time.perf_counter() - started)

    # ------------------------------------------------------------------ planned batches

    async def _planned(
        self, records: Sequence[Record], plan: Planner, careful: Careful, *, urgent: bool = False
    ) -> None:
        try:
            await self._apply(records, plan, careful, urgent=urgent)
        except Exception as exc:
            if is_transient(exc) or isinstance(exc, StageHaltedError | _Rewind):
                raise
            if len(records) > 1:
                # Which record's writes or events the server refused is not known: apply the
                # batch one record at a time (effects are keyed, so a repeat changes nothing).
                for record in records:
                    await self._planned([record], plan, careful, urgent=urgent)
                return
            await self._refused(records[0], exc)

    async def _refused(self, record: Record, exc: Exception) -> None:
        """One record whose effects the server refused: retried a few times if the error looks
        passing, then dead-lettered."""
        origin = (record.topic, record.partition, record.offset)
        attempts = self.stage.attempts.get(origin, 0) + 1
        if is_suspect(exc) and attempts < self.stage.suspect_attempt_limit:
            self.stage.attempts[origin] = attempts
            raise _Rewind from exc
        self.stage.attempts.pop(origin, None)
        logger.error(
            "the record's effects were refused; dead-lettering it",
            exc_info=exc,
            extra={"topic": record.topic, "partition": record.partition, "offset": record.offset},
        )
        reason = "retries_exhausted" if is_suspect(exc) else "unexpected_error"
        await self.stage.dead_letter(record, reason, type(exc).__name__)

    async def _apply(
        self, records: Sequence[Record], plan: Planner, careful: Careful, *, urgent: bool
    ) -> None:
        await self._give_way(urgent)
        outcomes = await self._plan(records, plan)
        plans: dict[int, Plan] = {}
        dead: list[tuple[Record, PermanentError]] = []
        deferred: set[int] = set()
        for index, (record, outcome) in enumerate(zip(records, outcomes, strict=True)):
            if isinstance(outcome, PermanentError):
                dead.append((record, outcome))
            elif isinstance(outcome, Plan):
                plans[index] = outcome
            elif isinstance(outcome, Deferred):
                deferred.add(index)
        await self._give_way(urgent)
        redelivered = await self._writer.guards(plans)
        crash_point(f"{self.stage.service}.after_batch_guards")
        fresh = [p for i, p in plans.items() if i not in redelivered]
        acting = [(i, p.act) for i, p in plans.items() if i not in redelivered and p.act]
        acted = await asyncio.gather(*(act() for _, act in acting))
        fresh.extend(acted)
        # An act that failed for good dead-letters its record with the batch's events.
        dead.extend((records[i], p.dead) for (i, _), p in zip(acting, acted, strict=True) if p.dead)
        await self._give_way(urgent)
        await self._writer.apply([w for p in fresh for w in p.writes])
        crash_point(f"{self.stage.service}.after_batch_writes")
        await self._give_way(urgent)
        await self._send([e for p in fresh for e in p.events], dead)
        crash_point(f"{self.stage.service}.after_batch_publish")
        await self._writer.apply([w for p in fresh for w in p.recorded])
        if redelivered or deferred:
            await self._each([records[i] for i in sorted(redelivered | deferred)], careful)
        for planned in fresh:
            if planned.done is not None:
                planned.done()
        # Dead letters and the careful path's records are counted where they are handled.
        dead_offsets = {(r.topic, r.partition, r.offset) for r, _ in dead}
        self._count_ok(
            r
            for i, r in enumerate(records)
            if i not in redelivered
            and i not in deferred
            and (r.topic, r.partition, r.offset) not in dead_offsets
        )

    async def _plan(self, records: Sequence[Record], plan: Planner) -> Sequence[Outcome]:
        """The batch's outcomes; a planner that fails unexpectedly is run record by record, so
        that only the record that caused it is dead-lettered."""
        try:
            return await plan(records)
        except Exception as exc:
            if is_transient(exc):
                raise
            if len(records) == 1:
                return [self._unexpected(records[0], exc)]
        outcomes: list[Outcome] = []
        for record in records:
            try:
                outcomes.extend(await plan([record]))
            except Exception as exc:
                if is_transient(exc):
                    raise
                outcomes.append(self._unexpected(record, exc))
        return outcomes

    def _unexpected(self, record: Record, exc: Exception) -> PermanentError:
        logger.error(
            "unexpected error; dead-lettering the record",
            exc_info=exc,
            extra={"topic": record.topic, "partition": record.partition, "offset": record.offset},
        )
        return PermanentError("unexpected_error", type(exc).__name__)

    async def _send(
        self, events: Sequence[Event], dead: Sequence[tuple[Record, PermanentError]]
    ) -> None:
        """Every event and dead letter of the batch, awaited together."""
        sends: list[Awaitable[Any]] = [self.stage.refuse(r, e) for r, e in dead]
        if events:
            sends.append(self.bus.emit_all([e.outgoing(self.bus) for e in events]))
        results = await asyncio.gather(*sends, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        if not dead:
            self.stage.reset_dead_count()

    # ------------------------------------------------------------------ per-record batches

    async def _each(self, records: Sequence[Record], handler: Handler) -> None:
        """Handle the records concurrently across keys, in order within a key."""
        semaphore = asyncio.Semaphore(self.concurrency)
        failures: list[BaseException] = []

        async def group(records: list[Record]) -> None:
            async with semaphore:
                for record in records:
                    if failures:
                        return
                    try:
                        await self.stage.process(record, handler, retry_inline=False)
                    except BaseException as exc:
                        failures.append(exc)
                        return

        await asyncio.gather(*(group(g) for g in by_key(records)))
        if failures:
            # Stage.process raises only what is to be retried (or the halt).
            first = failures[0]
            if isinstance(first, StageHaltedError):
                raise first
            raise _Rewind from first

    # ------------------------------------------------------------------ helpers

    async def _transient(self, exc: BaseException, records: Sequence[Record]) -> None:
        self._failures += 1
        delay = self.stage.backoff(self._failures)
        for label, count in _count_by_topic(records).items():
            self.stage.count_failure(label, type(exc).__name__, count)
        logger.warning(
            "transient failure (%s); the batch of %d comes again in %.1fs",
            type(exc).__name__,
            len(records),
            delay,
        )
        await asyncio.sleep(delay)

    def _count_ok(self, records: Iterable[Record]) -> None:
        for label, count in _count_by_topic(records).items():
            MESSAGES_PROCESSED.labels(self.stage.service, label, "ok").inc(count)


def _count_by_topic(records: Iterable[Record]) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for record in records:
        counts[topic_label(record.topic)] += 1
    return counts


async def _commit(consumer: Any, records: Sequence[Record]) -> None:
    """Commit each partition of the batch past its last record (a test broker has no offsets)."""
    if not hasattr(consumer, "assignment"):
        return
    offsets = {tp: last + 1 for tp, (_, last) in partitions_of(records).items()}
    await consumer.commit(offsets)


def _rewind(consumer: Any, records: Sequence[Record]) -> None:
    """Seek every partition of the batch that is still ours back to its first record."""
    if not hasattr(consumer, "assignment"):
        return
    assigned = consumer.assignment()
    for tp, (first, _) in partitions_of(records).items():
        if tp in assigned:
            consumer.seek(tp, first)
