"""Rate limits that hold across processes: at most ``limit`` admissions per key and fixed
window, counted in the database by inserts keyed by their slot.

A key's window has ``ceil(limit / chunk)`` slots, ``"<key>|<window>|<n>"``; each slot stands
for ``chunk`` admissions (the last for what is left of the limit). A process that needs
admissions for a key claims the next slots with one unordered insert: a slot is won by exactly
one process (an insert keyed by ``_id`` is atomic on FerretDB and MongoDB; an ``$inc`` on a
shared counter is not on FerretDB 1.x, which reads and rewrites, so two connections can lose
one), and a slot another process won already fails alone as a duplicate key. The admissions of
a won slot are spent from memory, so a key costs one document per ``chunk`` admissions, and a
batch of keys one command per round (usually one round). Once every slot of a window is known
to be taken, the key is refused from memory until the window ends.

So across any number of processes at most ``limit`` are admitted per key and window. A
process may hold unspent admissions of its last slot: with ``chunk`` > 1 and ``n`` processes
a key can be refused up to ``n * (chunk - 1)`` admissions short of the limit (``chunk = 1``:
exact).

A slot can also travel in another insert (:meth:`propose`): notify puts the slot of a message
in the message's own claim, so an admission costs no document of its own. The slots then live in
that collection under a unique index on ``field``, and :meth:`take_many` inserts its slots there
too (``"<field>|<slot>"`` as ``_id``, the slot in ``field``), so one slot has one winner whichever
way it was claimed.

``grace`` admissions per key and window are granted by each process from memory before the
database is asked, and the slots cover the rest of the limit: a key that sends a few requests
(a citizen) costs no database write at all, and with ``n`` processes at most
``limit + (n - 1) * grace`` are admitted (``grace = 0``: at most ``limit``).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from pymongo import InsertOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError

from shared.db import Document

DUPLICATE_KEY: Final = 11000
# FerretDB 1.x: keep a command's statements well under 100.
MAX_STATEMENTS: Final = 90


@dataclass(slots=True)
class _Window:
    tokens: int = 0  # admissions won and not yet spent by this process
    free: int = 0  # grace admissions spent
    next_slot: int = 1  # the first slot this process has not seen taken
    exhausted: bool = False


class WindowQuota:
    """One limit (``limit`` per ``window_seconds`` per key), shared through one collection."""

    def __init__(
        self,
        collection: AsyncCollection[Document],
        *,
        limit: int,
        window_seconds: float,
        chunk: int = 1,
        grace: int = 0,
        max_keys: int = 200_000,
        field: str | None = None,
    ) -> None:
        if limit < 0 or window_seconds <= 0 or chunk < 1 or not 0 <= grace <= limit:
            raise ValueError("limit >= 0, window_seconds > 0, chunk >= 1, 0 <= grace <= limit")
        self.collection = collection
        self.limit = limit
        self.window_seconds = window_seconds
        self.chunk = chunk
        self.grace = grace
        # What the slots share out: the limit beyond every process's grace.
        self.shared = limit - grace
        self.slots = math.ceil(self.shared / chunk)
        self.max_keys = max_keys
        # Slots stored in ``field`` of their documents (unique index) rather than as ``_id``.
        self.field = field
        self._windows: OrderedDict[str, _Window] = OrderedDict()
        # owner → the slot proposed to it (a plan made again proposes the same one).
        self._proposed: OrderedDict[str, str] = OrderedDict()

    def window_of(self, at: datetime) -> int:
        return int(at.timestamp() // self.window_seconds)

    def retry_after(self, at: datetime) -> float:
        """Seconds until the window of ``at`` ends (a refused key may try again then)."""
        end = (self.window_of(at) + 1) * self.window_seconds
        return max(0.0, end - at.timestamp())

    def take_local(self, key: str, at: datetime) -> bool | None:
        """True (admitted) or False (refused) when memory can tell; None when the database
        must be asked (:meth:`take_many`)."""
        state = self._state(f"{key}|{self.window_of(at)}")
        if state.free < self.grace:
            state.free += 1
            return True
        if state.tokens > 0:
            state.tokens -= 1
            return True
        if state.exhausted or self.slots == 0:
            return False
        return None

    def propose(self, key: str, at: datetime, *, owner: str) -> str | bool:
        """For a slot carried in the caller's own insert: True or False when memory can tell,
        else the next slot of the key's window, ``"<key>|<window>|<n>"``, reserved for
        ``owner`` (the same one each time ``owner`` asks in that window: a batch planned again
        after a rewind reuses its slots). The caller's document with that slot in ``field``
        wins it if its insert succeeds; a duplicate key means it may have been taken, and the
        caller asks again through :meth:`take_many`. Only for ``chunk`` 1 (one admission per
        slot) and a ``field``."""
        if self.chunk != 1 or self.field is None:
            raise ValueError("propose needs chunk 1 and a slot field")
        skey = f"{key}|{self.window_of(at)}"
        reserved = self._proposed.get(owner)
        if reserved is not None and reserved.rsplit("|", 1)[0] == skey:
            return reserved
        local = self.take_local(key, at)
        if local is not None:
            return local
        state = self._state(skey)
        if state.next_slot > self.slots:
            return False  # every slot of the window is proposed or taken
        slot = f"{skey}|{state.next_slot}"
        state.next_slot += 1
        self._proposed[owner] = slot
        while len(self._proposed) > self.max_keys:
            self._proposed.popitem(last=False)
        return slot

    async def take_many(self, keys: Sequence[str], at: datetime) -> list[bool]:
        """Whether each of ``keys`` (repeats allowed, in order) is admitted at ``at``."""
        window = self.window_of(at)
        admitted: list[bool | None] = [self.take_local(key, at) for key in keys]
        waiting: dict[str, list[int]] = {}
        for i, key in enumerate(keys):
            if admitted[i] is None:
                waiting.setdefault(f"{key}|{window}", []).append(i)
        expires = datetime.fromtimestamp((window + 2) * self.window_seconds, UTC)
        while waiting:
            wanted: list[tuple[str, int]] = []
            for skey, indexes in waiting.items():
                state = self._state(skey)
                need = math.ceil(len(indexes) / self.chunk)
                last = min(self.slots, state.next_slot + need - 1)
                wanted.extend((skey, n) for n in range(state.next_slot, last + 1))
            won = await self._claim(wanted, expires)
            for skey, n in wanted:
                state = self._state(skey)
                state.next_slot = max(state.next_slot, n + 1)
                if (skey, n) in won:
                    state.tokens += min(self.chunk, self.shared - (n - 1) * self.chunk)
            still: dict[str, list[int]] = {}
            for skey, indexes in waiting.items():
                state = self._state(skey)
                for i in indexes:
                    if state.tokens > 0:
                        state.tokens -= 1
                        admitted[i] = True
                    elif state.next_slot > self.slots:
                        state.exhausted = True
                        admitted[i] = False
                    else:
                        still.setdefault(skey, []).append(i)
            waiting = still
        return [bool(a) for a in admitted]

    async def sweep(self, now: datetime) -> int:
        """Drop the slots of windows that ended (a periodic task; the hot path never waits
        for it). Returns how many were deleted."""
        result = await self.collection.delete_many({"expires": {"$lt": now}})
        return int(result.deleted_count)

    async def _claim(self, wanted: list[tuple[str, int]], expires: datetime) -> set[Any]:
        """Insert the wanted slots; the ones this process won."""
        won: set[Any] = set()
        for start in range(0, len(wanted), MAX_STATEMENTS):
            part = wanted[start : start + MAX_STATEMENTS]
            docs = [self._slot_document(f"{skey}|{n}", expires) for skey, n in part]
            lost: set[int] = set()
            try:
                await self.collection.bulk_write([InsertOne(d) for d in docs], ordered=False)
            except BulkWriteError as exc:
                errors = exc.details.get("writeErrors", [])
                if any(e.get("code") != DUPLICATE_KEY for e in errors):
                    raise
                lost = {int(e["index"]) for e in errors}
            won.update(part[i] for i in range(len(part)) if i not in lost)
        return won

    def _slot_document(self, slot: str, expires: datetime) -> Document:
        if self.field is None:
            return {"_id": slot, "expires": expires}
        return {"_id": f"{self.field}|{slot}", self.field: slot, "expires": expires}

    def _state(self, skey: str) -> _Window:
        state = self._windows.get(skey)
        if state is None:
            state = self._windows[skey] = _Window()
            while len(self._windows) > self.max_keys:
                self._windows.popitem(last=False)
        else:
            self._windows.move_to_end(skey)
        return state


def window_length(capacity: float, per_minute: float) -> timedelta:
    """A token bucket's configuration as a fixed window: ``capacity`` admissions per the time
    the bucket takes to refill from empty."""
    if per_minute <= 0:
        return timedelta(days=1)
    return timedelta(seconds=max(1.0, capacity / (per_minute / 60.0)))
