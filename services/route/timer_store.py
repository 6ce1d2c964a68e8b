"""Where route keeps its service-level timers: collections named by due time, so the deadline
scan reads what is due or near due, never every open leg.

FerretDB 1.x (SQLite) answers only ``_id`` equality from an index: a filter on the due time, on
any other field, an ``_id`` range or ``$in`` reads the whole collection (measured on 50,000
timers: 1.4–2.9 s of database time per query, against about 1 ms for an ``_id`` lookup and for
a read of an empty collection). So the due time is in the collection's name instead, one
document per leg (``_id`` = leg id → ``request_id``, ``due_at``):

- ``sla_timers_<YYYYMMDDHHMM>`` (UTC): deadlines within :data:`LEVELS`' first lead (90 minutes)
  of when the timer was written, by their minute;
- ``sla_timers_<YYYYMMDDHH>``: deadlines up to two days ahead, by their hour;
  ``sla_timers_<YYYYMMDD>``: later ones, by their day — so a week of deadlines is some 150
  collections, not 10,000 (FerretDB's every query slows with the collections of its database:
  an ``_id`` lookup took 0.6 ms beside 20 collections, 1.3 ms beside 1,000, 5 ms beside 5,000);
- ``sla_timers``: timers whose deadline had already passed when they were written (a leg
  acknowledged after its resolve deadline, a backlog after an outage), and any written before
  the buckets existed.

A scan lists the collections, reads ``sla_timers`` and every minute bucket begun, each whole,
and hands each hour and day bucket about to begin (:attr:`Level.ahead`) on to finer buckets: its
timers inserted there in bulk, then the bucket dropped. A timer moves by an insert into its new
place, then a delete from the old one, both keyed by the leg: a crash in between leaves a
duplicate, which the scan reads, finds not due on the leg, and removes — never a lost timer.

A bucket is retired only once no writer would still choose it: a minute bucket found empty
:data:`DRAIN_GRACE` after its minute (writers put a timer in a minute bucket only while that
minute has not passed, else in ``sla_timers``), an hour or day bucket when it is handed on
(writers stop choosing an hour bucket 10 minutes before the scan reads it, a day bucket 18 hours
before). Yet an insert decided earlier can land later, so a bucket is never dropped under its own
name. Retiring it renames it (``sla_timers_retired_<stamp>_<when>``; no writer chooses that
name), then reads it whole and hands its timers on, and marks it with how many it handed on. An
insert that lands after the rename recreates the bucket under its old name, which the scan reads
as before. One in flight at the rename (FerretDB resolves a collection's table before it writes)
lands in the retired one: so that is dropped only :data:`RETIRE_GRACE` later, at a scan that
counts it again and hands its timers on once more if it has gained any. Every database call
gives up well within that grace (shared/db.py), so no insert is still in flight by then.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pymongo.errors import BulkWriteError, DuplicateKeyError, OperationFailure

from shared.db import DUPLICATE_KEY, Database, Document

# Overdue timers (and timers written before the buckets); read whole by every scan.
TIMERS = "sla_timers"
BUCKET_PREFIX = f"{TIMERS}_"
# How long after its minute an emptied minute bucket is kept (see the module's text).
DRAIN_GRACE = timedelta(minutes=2)
# Retired buckets: renamed out of the writers' way, dropped RETIRE_GRACE later.
RETIRED_PREFIX = f"{TIMERS}_retired_"
RETIRE_GRACE = timedelta(minutes=2)
_RETIRED_AT = "%Y%m%d%H%M%S%f"
# The document of a retired bucket that says how many timers it handed on.
MARKER = "~handed_on"
# MongoDB's codes: the collection to rename is gone (another process retired it); the new name
# is taken.
_NAMESPACE_NOT_FOUND = 26
_NAMESPACE_EXISTS = 48
# Timers per insert when an hour or day bucket is handed on.
_CHUNK = 500


@dataclass(frozen=True, slots=True)
class Level:
    """A bucket size: its name's format, the deadlines it takes (less than ``lead`` ahead of
    the writer's clock; None: any), and how long before its start a scan reads it."""

    step: timedelta
    format: str
    lead: timedelta | None
    ahead: timedelta

    def name(self, due_at: datetime) -> str:
        # By the bucket's index since the epoch: every timer of a batch falls in a few
        # buckets, so the name is formatted once per bucket rather than once per timer.
        return _bucket_name(self.format, self.step, (aware(due_at) - _EPOCH) // self.step)

    @property
    def digits(self) -> int:
        return len(f"{datetime(2000, 1, 1):{self.format}}")


@functools.lru_cache(maxsize=1024)
def _bucket_name(format: str, step: timedelta, index: int) -> str:
    return f"{BUCKET_PREFIX}{_EPOCH + step * index:{format}}"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MINUTE = Level(timedelta(minutes=1), "%Y%m%d%H%M", timedelta(minutes=90), timedelta(0))
# Read 20 minutes ahead: its deadlines are then within the minute buckets' 90-minute lead.
HOUR = Level(timedelta(hours=1), "%Y%m%d%H", timedelta(days=2), timedelta(minutes=20))
DAY = Level(timedelta(days=1), "%Y%m%d", None, timedelta(hours=6))
LEVELS = (MINUTE, HOUR, DAY)


@dataclass(frozen=True, slots=True)
class Timer:
    """A stored timer: the leg, when it falls due, and the collection it is kept in."""

    leg_id: str
    due_at: datetime
    collection: str


def aware(at: datetime) -> datetime:
    """Stored times come back naive (UTC) unless the client is tz-aware."""
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def bucket_of(due_at: datetime) -> str:
    """The minute bucket of a due time."""
    return MINUTE.name(due_at)


def parse(collection: str) -> tuple[Level, datetime] | None:
    """A bucket's level and when it begins; None for a collection that is not a bucket."""
    stamp = collection.removeprefix(BUCKET_PREFIX)
    if stamp == collection or not stamp.isdigit():
        return None
    for level in LEVELS:
        if len(stamp) == level.digits:
            try:
                return level, datetime.strptime(stamp, level.format).replace(tzinfo=UTC)
            except ValueError:
                return None
    return None


def bucket_start(collection: str) -> datetime | None:
    parsed = parse(collection)
    return None if parsed is None else parsed[1]


def place(due_at: datetime, *, now: datetime) -> str:
    """Where a timer written at ``now`` goes: the bucket of its lead, or ``sla_timers`` once
    its minute has passed."""
    if MINUTE.name(due_at) < MINUTE.name(now):
        return TIMERS
    for level in LEVELS:
        if level.lead is None or aware(due_at) - now < level.lead:
            return level.name(due_at)
    raise AssertionError("the last level takes any deadline")


def places(deadline: datetime) -> set[str]:
    """Every collection a timer for ``deadline`` can be in."""
    return {TIMERS, *(level.name(deadline) for level in LEVELS)}


def to_scan(collections: Iterable[str], *, now: datetime) -> list[str]:
    """The collections a scan at ``now`` reads: the overdue timers and the buckets begun (hour
    and day buckets: about to begin), earliest first."""
    begun: list[tuple[datetime, str]] = []
    for collection in collections:
        parsed = parse(collection)
        if parsed is not None and parsed[1] - parsed[0].ahead <= now:
            begun.append((parsed[1], collection))
    return [TIMERS, *(collection for _, collection in sorted(begun))]


def drained(collection: str, *, now: datetime) -> bool:
    """Whether a bucket found empty at ``now`` may be dropped."""
    parsed = parse(collection)
    if parsed is None:
        return False
    level, start = parsed
    if level is MINUTE:
        return start + MINUTE.step + DRAIN_GRACE <= now
    return start - level.ahead <= now


def retired_name(collection: str, *, now: datetime) -> str:
    """The name a bucket is retired under: its stamp and when it was retired."""
    stamp = collection.removeprefix(BUCKET_PREFIX)
    return f"{RETIRED_PREFIX}{stamp}_{aware(now).astimezone(UTC):{_RETIRED_AT}}"


def retired_at(collection: str) -> datetime | None:
    """When a retired bucket was retired; None for another collection."""
    if not collection.startswith(RETIRED_PREFIX):
        return None
    try:
        stamp = collection.rsplit("_", 1)[1]
        return datetime.strptime(stamp, _RETIRED_AT).replace(tzinfo=UTC)
    except ValueError:
        return None


def document(leg_id: str, request_id: str, due_at: datetime) -> dict[str, object]:
    return {"_id": leg_id, "request_id": request_id, "due_at": due_at}


class TimerStore:
    """The timers' reads and writes; every write is keyed by the leg's id."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def put(
        self, leg_id: str, request_id: str, due_at: datetime, *, now: datetime
    ) -> tuple[str, bool]:
        """Store the timer at its place; returns the collection and whether anything changed
        (False: it was there already, due then)."""
        collection = place(due_at, now=now)
        try:
            await self.db[collection].insert_one(document(leg_id, request_id, due_at))
        except DuplicateKeyError:
            result = await self.db[collection].update_one(
                {"_id": leg_id, "due_at": {"$ne": due_at}}, {"$set": {"due_at": due_at}}
            )
            return collection, result.modified_count > 0
        return collection, True

    async def arm(self, leg_id: str, request_id: str, due_at: datetime, *, now: datetime) -> None:
        """A new leg's first timer (kept as it is on a redelivery)."""
        with contextlib.suppress(DuplicateKeyError):
            await self.db[place(due_at, now=now)].insert_one(document(leg_id, request_id, due_at))

    async def reschedule(
        self,
        leg_id: str,
        request_id: str,
        due_at: datetime | None,
        *,
        deadlines: Iterable[datetime],
        now: datetime,
    ) -> None:
        """Move a leg's timer to ``due_at`` (None: stop it). The timer was kept for one of the
        leg's ``deadlines``: once the insert is in, it is deleted from each place it could be
        in. A timer found in place already was moved before: nothing to do (a copy a crash left
        elsewhere is the scan's to remove)."""
        kept = None
        if due_at is not None:
            kept, changed = await self.put(leg_id, request_id, due_at, now=now)
            if not changed:
                return
        stale = set().union(*(places(deadline) for deadline in deadlines)) - {kept}
        await asyncio.gather(*(self.db[c].delete_one({"_id": leg_id}) for c in sorted(stale)))

    async def move(
        self, timer: Timer, due_at: datetime | None, *, request_id: str, now: datetime
    ) -> None:
        """Move a timer the scan read (its place is known) to ``due_at``; None: stop it."""
        if (
            due_at is not None
            and due_at == timer.due_at
            and place(due_at, now=now)
            in (
                timer.collection,
                TIMERS,
            )
        ):
            return  # still due where it is (another process holds the deadline)
        kept = None
        if due_at is not None:
            kept, _ = await self.put(timer.leg_id, request_id, due_at, now=now)
        if kept != timer.collection:
            await self.db[timer.collection].delete_one({"_id": timer.leg_id})

    async def due(self, now: datetime) -> list[Timer]:
        """The timers due at ``now``. On the way, hour and day buckets about to begin are
        handed on to finer buckets, emptied minute buckets are retired, and retired buckets
        past their grace are dropped (see the module's text)."""
        names = await self.db.list_collection_names()
        due: list[Timer] = []
        for collection in sorted(n for n in names if n.startswith(RETIRED_PREFIX)):
            due.extend(await self._settle(collection, now=now))
        for collection in to_scan(names, now=now):
            parsed = parse(collection)
            if parsed is not None and parsed[0] is not MINUTE:
                due.extend(await self._retire(collection, now=now))
                continue
            found = [doc async for doc in self.db[collection].find({})]
            if not found and drained(collection, now=now):
                due.extend(await self._retire(collection, now=now))
            for doc in found:
                timer = Timer(str(doc["_id"]), aware(doc["due_at"]), collection)
                if timer.due_at <= now:
                    due.append(timer)
                elif place(timer.due_at, now=now) != collection:
                    request_id = str(doc.get("request_id", ""))
                    await self.move(timer, timer.due_at, request_id=request_id, now=now)
        return due

    async def _retire(self, collection: str, *, now: datetime) -> list[Timer]:
        """A bucket no writer chooses any more, renamed out of their way, read whole and its
        timers handed on; returns those due, where they went."""
        retired = retired_name(collection, now=now)
        try:
            await self.db[collection].rename(retired)
        except OperationFailure as exc:
            if exc.code in (_NAMESPACE_NOT_FOUND, _NAMESPACE_EXISTS):
                return []  # another process retired it; or a name taken: the next scan
            raise
        return await self._hand_on_retired(retired, now=now)

    async def _hand_on_retired(self, retired: str, *, now: datetime) -> list[Timer]:
        docs = [doc async for doc in self.db[retired].find({}) if doc["_id"] != MARKER]
        due = await self._hand_on(docs, now=now)
        await self.db[retired].update_one(
            {"_id": MARKER}, {"$set": {"handed_on": len(docs)}}, upsert=True
        )
        return due

    async def _settle(self, retired: str, *, now: datetime) -> list[Timer]:
        """A retired bucket past its grace: counted again, its timers handed on once more if
        it gained any (or was never marked: a crash after its rename), then dropped."""
        at = retired_at(retired)
        if at is not None and now < at + RETIRE_GRACE:
            return []
        docs = [doc async for doc in self.db[retired].find({})]
        marker = next((doc for doc in docs if doc["_id"] == MARKER), None)
        timers = [doc for doc in docs if doc["_id"] != MARKER]
        due: list[Timer] = []
        if marker is None or marker.get("handed_on") != len(timers):
            due = await self._hand_on(timers, now=now)
        await self.db[retired].drop()
        return due

    async def _hand_on(self, found: list[Document], *, now: datetime) -> list[Timer]:
        """Timers read from a bucket no writer chooses, every one into its place now (in bulk,
        a timer already there kept); returns those due, where they went. A copy of a timer
        moved or stopped meanwhile is read by the scan later and removed."""
        targets: dict[str, list[Document]] = {}
        due: list[Timer] = []
        for doc in found:
            target = place(doc["due_at"], now=now)
            targets.setdefault(target, []).append(doc)
            if aware(doc["due_at"]) <= now:
                due.append(Timer(str(doc["_id"]), aware(doc["due_at"]), target))
        for target, docs in targets.items():
            for start in range(0, len(docs), _CHUNK):
                try:
                    await self.db[target].insert_many(docs[start : start + _CHUNK], ordered=False)
                except BulkWriteError as exc:
                    if any(e.get("code") != DUPLICATE_KEY for e in exc.details["writeErrors"]):
                        raise
        return due
