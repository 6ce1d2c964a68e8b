"""The one retry policy: exponential back-off between tries (stage records, batches, notify's
sends, intake's record writes), and one loop that retries a start-up step a number of times."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Past this many doublings the pause stays the same (the cap is reached long before).
MAX_DOUBLINGS = 10


@dataclass(frozen=True, slots=True)
class Backoff:
    """Pauses of ``initial``, 2·``initial``, 4·``initial`` ... capped at ``maximum`` seconds."""

    initial: float
    maximum: float

    def delay(self, failures: int) -> float:
        """Seconds to wait after ``failures`` (1, 2, ...) failures in a row."""
        doublings = min(max(failures, 1) - 1, MAX_DOUBLINGS)
        return float(min(self.maximum, self.initial * 2**doublings))

    def delays(self, attempts: int) -> list[float]:
        """The pauses between ``attempts`` tries (one fewer than the tries)."""
        return [self.delay(n) for n in range(1, max(0, attempts - 1) + 1)]


async def retrying(
    call: Callable[[], Awaitable[T]],
    *,
    what: str,
    attempts: int,
    pause: float = 1.0,
    retry_on: tuple[type[BaseException], ...] = (Exception,),
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    """``call()`` until it returns, at most ``attempts`` times with ``pause`` seconds between
    tries; the last failure is raised. For steps that wait for a broker or a database to come up."""
    for attempt in range(1, attempts + 1):
        try:
            return await call()
        except retry_on as exc:
            if attempt == attempts:
                raise
            logger.warning(
                "%s failed (%s); retrying (%d/%d)", what, type(exc).__name__, attempt, attempts
            )
            await sleep(pause)
    raise ValueError("attempts must be at least 1")
