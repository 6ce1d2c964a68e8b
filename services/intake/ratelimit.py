"""Per-phone and per-client rate limits: token buckets with an injected clock.

The buckets live in the memory of one intake process. With several intake processes behind a
load balancer each has its own buckets, so the effective limit is the configured one times the
number of processes: enough to stop one phone or one client from flooding the queue during a
surge, not an exact global quota (that would need a shared store on the hot path).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

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


def retry_after(wait_seconds: float) -> str:
    """The Retry-After header value: whole seconds, at least 1, at most a day."""
    if not math.isfinite(wait_seconds):
        return "86400"
    return str(min(86400, max(1, math.ceil(wait_seconds))))
