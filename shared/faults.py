"""Crash points: named places between a handler's effects where a fault test can kill the process.

A crash point does nothing unless the service was started with ``CITYHELP_CRASH_POINTS``
naming it, e.g. ``route.after_publish:3`` (die the third time that point is reached in this
process) or ``verify.after_store`` (the first time). When it fires, the process ends at once
with ``os._exit(137)`` — no ``finally`` blocks, no offset commit, no flush — as under SIGKILL,
so the test sees exactly what a crash at that point leaves behind.

The points are configured once from the service's settings (``Runtime.create``); nothing here
reads the environment. ``docs/delivery.md`` lists every point and what a crash there leaves.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections import Counter
from collections.abc import Mapping
from typing import Final

logger = logging.getLogger(__name__)

EXIT_CODE: Final = 137  # what a shell reports for SIGKILL (128 + 9)

_NAME = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")

# name -> the hit (1-based) on which the process dies; empty = every point is inert.
_armed: dict[str, int] = {}
_hits: Counter[str] = Counter()


def parse(spec: str) -> dict[str, int]:
    """``"a.b:3, c.d"`` → ``{"a.b": 3, "c.d": 1}``; a malformed entry raises ValueError."""
    points: dict[str, int] = {}
    for raw in spec.split(","):
        item = raw.strip()
        if not item:
            continue
        name, _, nth = item.partition(":")
        name = name.strip()
        if not _NAME.match(name):
            raise ValueError(f"crash point {name!r} is not <stage>.<point>")
        try:
            count = int(nth) if nth.strip() else 1
        except ValueError as exc:
            raise ValueError(f"crash point {name!r}: {nth!r} is not a whole number") from exc
        if count < 1:
            raise ValueError(f"crash point {name!r}: the hit number must be 1 or more")
        points[name] = count
    return points


def configure(points: Mapping[str, int] | str) -> None:
    """Arm the given points (replacing any armed before) and reset the hit counts."""
    _armed.clear()
    _hits.clear()
    _armed.update(parse(points) if isinstance(points, str) else points)
    if _armed:
        logger.warning("crash points armed: %s", ",".join(f"{k}:{v}" for k, v in _armed.items()))


def armed() -> dict[str, int]:
    return dict(_armed)


def crash_point(name: str) -> None:
    """End the process here (exit 137, like SIGKILL) if this point is armed and due."""
    if not _armed:
        return
    due = _armed.get(name)
    if due is None:
        return
    _hits[name] += 1
    if _hits[name] == due:
        # The one line a test finds in the log; stderr is unbuffered, logging may not be.
        sys.stderr.write(f"crash point {name} reached (hit {due}): exiting with {EXIT_CODE}\n")
        sys.stderr.flush()
        os._exit(EXIT_CODE)
