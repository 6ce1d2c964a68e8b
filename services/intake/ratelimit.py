"""Per-phone and per-client rate limits.

The per-client limit holds across every intake process: :class:`SharedLimit` asks a
:class:`shared.quota.WindowQuota` (slots claimed by inserts in the database) and batches the
requests that need the database into one command per tick, so the request path waits at most
a tick plus one round trip, and only for a client past its grace.

The per-phone limit is a token bucket in the memory of one process (with several processes
the effective limit is the configured one times their number); verify's flood and duplicate
rules, per phone and shared, are the backstop.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from shared.envelope import utcnow
from shared.quota import WindowQuota

logger = logging.getLogger(__name__)

Clock = Callable[[], float]


@dataclass(slots=True)
class TokenBucket:
    """``capacity`` tokens, refilled at ``per_second``; each request takes one."""

    capacity: float
    per_second: float
    tokens: float
    updated: float

    def take(self, now: float) -> float:
        """0.0 when a token was taken, else the seconds until one is available."""
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(self.capacity, self.tokens + elapsed * self.per_second)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        if self.per_second <= 0:
            return math.inf
        return (1.0 - self.tokens) / self.per_second


class RateLimiter:
    """Buckets by key (a hash, never a phone number), the least recently used evicted first so
    that memory stays bounded however many distinct keys arrive."""

    def __init__(
        self,
        *,
        capacity: float,
        per_minute: float,
        clock: Clock = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        self.capacity = capacity
        self.per_second = per_minute / 60.0
        self.clock = clock
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def take(self, key: str) -> float:
        """0.0 when allowed, else the seconds to wait (for Retry-After)."""
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = TokenBucket(self.capacity, self.per_second, self.capacity, now)
            self._buckets[key] = bucket
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket.take(now)


class SharedLimit:
    """The per-client limit, shared through the database. A database that fails or is slow
    admits (an emergency intake stays open; the failure is logged, not the client)."""

    def __init__(
        self,
        quota: WindowQuota,
        *,
        tick_seconds: float = 0.01,
        timeout_seconds: float = 1.0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.quota = quota
        self.tick_seconds = tick_seconds
        self.timeout_seconds = timeout_seconds
        self.clock = clock
        self._waiting: list[tuple[str, asyncio.Future[bool]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def wait(self, key: str) -> float:
        """0.0 when admitted, else the seconds until the client's window ends."""
        now = self.clock()
        local = self.quota.take_local(key, now)
        if local is None:
            future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
            self._waiting.append((key, future))
            if self._flusher is None:
                self._flusher = asyncio.create_task(self._flush_soon())
            local = await future
        return 0.0 if local else max(1.0, self.quota.retry_after(now))

    async def _flush_soon(self) -> None:
        await asyncio.sleep(self.tick_seconds)
        batch, self._waiting, self._flusher = self._waiting, [], None
        try:
            answers = await asyncio.wait_for(
                self.quota.take_many([key for key, _ in batch], self.clock()),
                self.timeout_seconds,
            )
        except Exception as exc:  # the database away: admit, and say so
            logger.warning("client rate limit not checked: %s", type(exc).__name__)
            answers = [True] * len(batch)
        for (_, future), admitted in zip(batch, answers, strict=True):
            if not future.done():
                future.set_result(admitted)


def retry_after(wait_seconds: float) -> str:
    """The Retry-After header value: whole seconds, at least 1, at most a day."""
    if not math.isfinite(wait_seconds):
        return "86400"
    return str(min(86400, max(1, math.ceil(wait_seconds))))
