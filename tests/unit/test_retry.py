"""The one retry policy: back-off pauses, and the loop that retries a start-up step."""

from __future__ import annotations

import pytest

from shared.retry import Backoff, retrying

pytestmark = pytest.mark.unit


def test_backoff_doubles_and_is_capped() -> None:
    backoff = Backoff(0.5, 3.0)
    assert backoff.delays(5) == [0.5, 1.0, 2.0, 3.0]
    assert backoff.delays(1) == []
    assert backoff.delays(0) == []
    assert [backoff.delay(n) for n in (1, 2, 3, 4, 50)] == [0.5, 1.0, 2.0, 3.0, 3.0]


class Flaky:
    """Fails ``failures`` times with ``error``, then answers ``"up"``."""

    def __init__(self, failures: int, error: type[Exception] = ConnectionError) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error("down")
        return "up"


async def test_retrying_pauses_between_tries_until_the_step_answers() -> None:
    pauses: list[float] = []

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)

    step = Flaky(2)
    assert await retrying(step, what="step", attempts=5, pause=0.25, sleep=sleep) == "up"
    assert step.calls == 3
    assert pauses == [0.25, 0.25]


async def test_retrying_raises_the_last_failure_when_the_tries_run_out() -> None:
    async def sleep(seconds: float) -> None:
        return None

    step = Flaky(5)
    with pytest.raises(ConnectionError):
        await retrying(step, what="step", attempts=3, sleep=sleep)
    assert step.calls == 3


async def test_retrying_does_not_retry_an_error_it_was_not_told_to() -> None:
    async def sleep(seconds: float) -> None:
        return None

    step = Flaky(1, error=KeyError)
    with pytest.raises(KeyError):
        await retrying(step, what="step", attempts=3, retry_on=(ConnectionError,), sleep=sleep)
    assert step.calls == 1
