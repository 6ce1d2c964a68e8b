"""Rate-limit token buckets, with an injected clock."""

from __future__ import annotations

import pytest

from services.intake.ratelimit import RateLimiter, retry_after

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_refused_with_the_wait_until_the_next_token() -> None:
    clock = Clock()
    limiter = RateLimiter(capacity=3, per_minute=6, clock=clock)  # one token per 10 s
    assert [limiter.take("k") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("k") == pytest.approx(10.0)
    clock.now += 4
    assert limiter.take("k") == pytest.approx(6.0)
    clock.now += 6
    assert limiter.take("k") == 0.0
    assert limiter.take("k") > 0


def test_keys_have_their_own_buckets() -> None:
    limiter = RateLimiter(capacity=1, per_minute=1, clock=Clock())
    assert limiter.take("a") == 0.0
    assert limiter.take("a") > 0
    assert limiter.take("b") == 0.0


def test_refill_never_exceeds_the_capacity() -> None:
    clock = Clock()
    limiter = RateLimiter(capacity=2, per_minute=60, clock=clock)
    clock.now += 3600
    assert [limiter.take("k") > 0 for _ in range(3)] == [False, False, True]


def test_least_recently_used_keys_are_evicted_to_bound_memory() -> None:
    clock = Clock()
    limiter = RateLimiter(capacity=1, per_minute=0, clock=clock, max_keys=2)
    limiter.take("a")
    limiter.take("b")
    limiter.take("a")  # a is now the most recent
    limiter.take("c")  # evicts b
    assert limiter.take("a") > 0  # still remembered: empty
    assert limiter.take("b") == 0.0  # forgotten: a fresh bucket


def test_zero_refill_waits_forever_and_retry_after_is_capped() -> None:
    limiter = RateLimiter(capacity=1, per_minute=0, clock=Clock())
    limiter.take("k")
    assert retry_after(limiter.take("k")) == "86400"
    assert retry_after(0.2) == "1"
    assert retry_after(9.1) == "10"
