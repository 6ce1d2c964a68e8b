"""A group-less consumer that reads a service set's topics from their beginning until stopped,
handing every record to a recorder (the bench's and the chaos run's tallies)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Generic, Protocol, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

logger = logging.getLogger(__name__)


class Recorder(Protocol):
    def add(self, name: str, record: ConsumerRecord[bytes, bytes]) -> None:
        """One record of topic ``name`` (the contract name, without the set's prefix)."""


R = TypeVar("R", bound=Recorder)


class TopicReader(Generic[R]):
    """Reads ``prefix`` + each of ``topics`` from the beginning into ``seen``."""

    def __init__(
        self,
        bootstrap: str,
        prefix: str,
        topics: Iterable[str],
        seen: R,
        *,
        max_poll_records: int = 2000,
    ) -> None:
        self.prefix = prefix
        self.seen = seen
        self.consumer = AIOKafkaConsumer(
            *[prefix + t for t in topics],
            bootstrap_servers=bootstrap,
            group_id=None,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            max_poll_records=max_poll_records,
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.consumer.start()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        cut = len(self.prefix)
        while True:
            try:
                batch = await self.consumer.getmany(timeout_ms=500)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the broker is restarting: the consumer reconnects
                logger.debug("watch: %s", exc)
                await asyncio.sleep(1)
                continue
            for tp, records in batch.items():
                name = tp.topic[cut:]
                for record in records:
                    self.seen.add(name, record)
            await asyncio.sleep(0)

    async def end_offsets(self, topics: set[str]) -> dict[TopicPartition, int]:
        """The end offset of every partition of ``topics`` (full names)."""
        parts = [
            TopicPartition(t, p)
            for t in topics
            for p in sorted(self.consumer.partitions_for_topic(t) or ())
        ]
        return dict(await self.consumer.end_offsets(parts)) if parts else {}

    async def caught_up(self) -> bool:
        """Whether this reader has read everything on its topics so far."""
        parts = list(self.consumer.assignment())
        ends = await self.consumer.end_offsets(parts)
        for tp in parts:
            if await self.consumer.position(tp) < ends[tp]:
                return False
        return True

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.consumer.stop()
