"""Recent keyed receipts in memory: a retry of a keyed submission is answered from here.

The request id of a keyed submission is derived from the client and its Idempotency-Key (or a
partner's external id), so a retry *is* the same request to every later stage; the cache only
saves the retry a database read and a second publish. It is bounded (least recently used
entries go first) and entries expire, so memory stays flat however many keys arrive. It holds
request ids (derived hashes) and a status word, never personal data.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

Clock = Callable[[], float]


class ReplayCache:
    """request id → status of its first answer, for ``ttl_seconds``, at most ``max_entries``."""

    def __init__(
        self,
        *,
        max_entries: int = 100_000,
        ttl_seconds: float = 3600.0,
        clock: Clock = time.monotonic,
    ) -> None:
        self.max_entries = max(0, max_entries)
        self.ttl_seconds = ttl_seconds
        self.clock = clock
        self._entries: OrderedDict[str, tuple[float, str]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, request_id: str) -> str | None:
        """The status remembered for ``request_id``, or None (unknown or expired)."""
        entry = self._entries.get(request_id)
        if entry is None:
            return None
        expires, status = entry
        if self.clock() >= expires:
            del self._entries[request_id]
            return None
        self._entries.move_to_end(request_id)
        return status

    def clear(self) -> None:
        """Forget every receipt, as a new process would."""
        self._entries.clear()

    def put(self, request_id: str, status: str = "submitted") -> None:
        if self.max_entries == 0:
            return
        self._entries[request_id] = (self.clock() + self.ttl_seconds, status)
        self._entries.move_to_end(request_id)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
