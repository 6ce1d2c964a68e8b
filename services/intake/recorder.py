"""The submission records, written in batches off the request path.

A ``202`` waits for Kafka only (the request is then durable); the request's record in the
database (``requests``, see ``repository.submission_document``) is queued here and written by one
background loop with an unordered ``insert_many`` of at most ``batch_max`` documents, about every
``flush_seconds`` or as soon as a batch is full.

- Idempotent: every document is keyed by its request id, so a duplicate ``_id`` only means the
  record exists already (a retry, or verify created it first); that document alone fails.
- Not silently lossy: while the database is away (or slower than the requests come) the batch
  is retried with back-off and new records wait in a bounded buffer; what does not fit is
  dropped and counted (``cityhelp_intake_records_total{outcome="dropped_full"}``). A dropped
  record costs nothing durable: the request is in Kafka and verify's decision carries the
  record (``requests_store.merged``), which verify creates when it finds none.
- Bounded memory: a buffered record is kept encoded (BSON, about 1 KB; the dict it comes from
  takes half as much again), and the buffer holds ``buffer_max`` of them (10,000 by default:
  about 10 MB; it was 50,000 of dicts, some 70 MB, and took intake past its memory budget
  under a surge). The encoding is the one the insert does anyway, done once, when queued.
- Every database call has a timeout; a document the server refuses for another reason than a
  duplicate is retried ``rejected_attempts`` times, then dropped and counted.

Logs name counts and error types only, never a document (they carry personal data).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import bson
from bson.raw_bson import RawBSONDocument
from pymongo.errors import BulkWriteError, ConnectionFailure, OperationFailure, WriteConcernError

from shared.db import DUPLICATE_KEY, Document
from shared.metrics import INTAKE_RECORD_BUFFER, INTAKE_RECORD_WRITE_FAILURES, INTAKE_RECORDS
from shared.retry import Backoff

logger = logging.getLogger(__name__)

Insert = Callable[[list[RawBSONDocument]], Awaitable[Any]]
Sleep = Callable[[float], Awaitable[None]]


def is_unavailable(exc: BaseException) -> bool:
    """The database is away or busy (retried for as long as it takes), not refusing the data."""
    if isinstance(exc, ConnectionFailure | WriteConcernError | TimeoutError | OSError):
        return True
    return isinstance(exc, OperationFailure) and "database is locked" in str(exc)


class SubmissionWriter:
    """A bounded buffer of submission records and the loop (:meth:`run`) that writes them."""

    def __init__(
        self,
        insert: Insert,
        *,
        batch_max: int = 99,
        flush_seconds: float = 0.02,
        buffer_max: int = 10_000,
        timeout_seconds: float = 5.0,
        retry_initial_seconds: float = 0.5,
        retry_max_seconds: float = 15.0,
        rejected_attempts: int = 8,
        stop_seconds: float = 3.0,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        # FerretDB stalls on commands of 100 statements or more: stay below.
        self.batch_max = max(1, min(batch_max, 99))
        self.flush_seconds = flush_seconds
        self.buffer_max = buffer_max
        self.timeout_seconds = timeout_seconds
        self.backoff = Backoff(retry_initial_seconds, retry_max_seconds)
        self.rejected_attempts = rejected_attempts
        self.stop_seconds = stop_seconds
        self._insert = insert
        self._sleep = sleep
        self._buffer: deque[RawBSONDocument] = deque()
        self._batch: list[RawBSONDocument] = []  # being written (put back if the loop is stopped)
        self._pending = asyncio.Event()
        self._full = asyncio.Event()

    @property
    def waiting(self) -> int:
        """Records not yet written (buffered or in the batch being written)."""
        return len(self._buffer) + len(self._batch)

    def add(self, document: Document) -> bool:
        """Queue one record (encoded); False (and counted) when the buffer is full."""
        if len(self._buffer) >= self.buffer_max:
            INTAKE_RECORDS.labels("dropped_full").inc()
            return False
        self._buffer.append(RawBSONDocument(bson.encode(document)))
        INTAKE_RECORD_BUFFER.set(len(self._buffer))
        self._pending.set()
        if len(self._buffer) >= self.batch_max:
            self._full.set()
        return True

    async def run(self) -> None:
        """Write batches until cancelled; then write what is left, for ``stop_seconds``."""
        try:
            while True:
                await self._pending.wait()
                if len(self._buffer) < self.batch_max:
                    # The first record of a batch waits a little for company.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._full.wait(), self.flush_seconds)
                while self._buffer:
                    self._batch = self._take()
                    await self._write()
                self._pending.clear()
                self._full.clear()
        except asyncio.CancelledError:
            await self._drain()
            raise

    async def flush(self) -> None:
        """Write everything buffered now (tests, shutdown)."""
        while self._buffer:
            self._batch = self._take()
            await self._write()

    def _take(self) -> list[RawBSONDocument]:
        count = min(self.batch_max, len(self._buffer))
        batch = [self._buffer.popleft() for _ in range(count)]
        INTAKE_RECORD_BUFFER.set(len(self._buffer))
        return batch

    async def _write(self) -> None:
        """Write ``self._batch``, retrying until it is written, exists or is given up."""
        failures = refused = 0
        while self._batch:
            error = await self._attempt()
            if error is None:
                break
            if not is_unavailable(error):
                refused += 1
                if refused >= self.rejected_attempts:
                    INTAKE_RECORDS.labels("dropped_rejected").inc(len(self._batch))
                    logger.error(
                        "gave up on %d submission records after %d attempts (%s); verify "
                        "creates them",
                        len(self._batch),
                        refused,
                        type(error).__name__,
                    )
                    break
            INTAKE_RECORD_WRITE_FAILURES.labels(type(error).__name__).inc()
            failures += 1
            delay = self.backoff.delay(failures)
            logger.warning(
                "could not write %d submission records (%s); retrying in %.1fs",
                len(self._batch),
                type(error).__name__,
                delay,
            )
            await self._sleep(delay)
        self._batch = []

    async def _attempt(self, within: float | None = None) -> BaseException | None:
        """One insert of ``self._batch``; keeps in it only the documents still to write."""
        try:
            async with asyncio.timeout(within or self.timeout_seconds):
                await self._insert(self._batch)
        except BulkWriteError as exc:
            errors = {int(e["index"]): e for e in exc.details.get("writeErrors", ())}
            retry = [i for i, e in sorted(errors.items()) if e.get("code") != DUPLICATE_KEY]
            existed = len(errors) - len(retry)
            INTAKE_RECORDS.labels("written").inc(len(self._batch) - len(errors))
            if existed:
                INTAKE_RECORDS.labels("existed").inc(existed)
            self._batch = [self._batch[i] for i in retry]
            return exc if self._batch else None
        except Exception as exc:
            return exc
        INTAKE_RECORDS.labels("written").inc(len(self._batch))
        self._batch = []
        return None

    async def _drain(self) -> None:
        """On stop: one attempt per batch for what is left, within ``stop_seconds``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.stop_seconds
        if self._batch:
            self._buffer.extendleft(reversed(self._batch))
            self._batch = []
        while self._buffer and (left := deadline - loop.time()) > 0:
            self._batch = self._take()
            if await self._attempt(within=left) is not None:
                break
        lost = self.waiting
        if lost:
            INTAKE_RECORDS.labels("dropped_stopped").inc(lost)
            logger.warning(
                "stopped with %d submission records unwritten; verify creates them", lost
            )
        self._buffer.clear()
        self._batch = []
        INTAKE_RECORD_BUFFER.set(0)
