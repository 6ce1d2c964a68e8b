"""Where route keeps its service-level timers: a collection per minute of due time, so the
deadline scan reads what is due, never every open leg.

FerretDB 1.x (SQLite) answers only ``_id`` equality from an index: a filter on the due time, on
any other field, an ``_id`` range or ``$in`` reads the whole collection (measured on 50,000
timers: 1.4–2.9 s of database time per query, against about 1 ms for an ``_id`` lookup and for
a read of an empty collection). So the due time is in the collection's name instead:

- ``sla_timers_<YYYYMMDDHHMM>`` (UTC): the timers whose deadline falls in that minute, one
  document per leg (``_id`` = leg id → ``request_id``, ``due_at``);
- ``sla_timers``: timers whose deadline had already passed when they were written (a leg
  acknowledged after its resolve deadline, a backlog after an outage), and any written before
  the minute buckets existed.

A scan lists the collections, reads ``sla_timers`` and every bucket whose minute has begun, each
whole (they hold only what is due, or due within the minute), and drops the buckets it found
empty once their minute is :data:`DRAIN_GRACE` behind it. A timer moves by an insert into its new
place, then a delete from the old one, both keyed by the leg: a crash in between leaves a
duplicate, which the scan reads, finds not due on the leg, and removes — never a lost timer.

Writers place a timer in a bucket only if its minute has not passed by their clock (else in
``sla_timers``), and a bucket is dropped only :data:`DRAIN_GRACE` after its minute ended: an
insert that lands after the drop recreates the collection, which the next scan reads. (Only an
insert decided that long before it lands, and landing between the scan's read and its drop,
could be lost.)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pymongo.errors import DuplicateKeyError

from shared.db import Database

# Overdue timers (and timers written before the buckets); read whole by every scan.
TIMERS = "sla_timers"
BUCKET_PREFIX = f"{TIMERS}_"
BUCKET = timedelta(minutes=1)
# How long after its minute an emptied bucket is kept (see the module's text).
DRAIN_GRACE = timedelta(minutes=2)
_NAME = "%Y%m%d%H%M"


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
    """The bucket collection of a due time (its UTC minute)."""
    return f"{BUCKET_PREFIX}{aware(due_at).astimezone(UTC):{_NAME}}"


def bucket_start(collection: str) -> datetime | None:
    """When a bucket's minute begins; None for a collection that is not a bucket."""
    if not collection.startswith(BUCKET_PREFIX):
        return None
    try:
        start = datetime.strptime(collection.removeprefix(BUCKET_PREFIX), _NAME)
    except ValueError:
        return None
    return start.replace(tzinfo=UTC)


def place(due_at: datetime, *, now: datetime) -> str:
    """Where a timer written at ``now`` goes: its bucket, unless that minute has passed."""
    bucket = bucket_of(due_at)
    return bucket if bucket >= bucket_of(now) else TIMERS


def to_scan(collections: Iterable[str], *, now: datetime) -> list[str]:
    """The collections a scan at ``now`` reads: the overdue timers and the begun buckets."""
    current = bucket_of(now)
    buckets = sorted(c for c in collections if bucket_start(c) is not None and c <= current)
    return [TIMERS, *buckets]


def drained(collection: str, *, now: datetime) -> bool:
    """Whether a bucket found empty at ``now`` may be dropped."""
    start = bucket_start(collection)
    return start is not None and start + BUCKET + DRAIN_GRACE <= now


def document(leg_id: str, request_id: str, due_at: datetime) -> dict[str, object]:
    return {"_id": leg_id, "request_id": request_id, "due_at": due_at}


class TimerStore:
    """The timers' reads and writes; every write is keyed by the leg's id."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def put(self, leg_id: str, request_id: str, due_at: datetime, *, now: datetime) -> str:
        """Store the timer at its place (its due time replaced if one is there); returns the
        collection."""
        collection = place(due_at, now=now)
        try:
            await self.db[collection].insert_one(document(leg_id, request_id, due_at))
        except DuplicateKeyError:
            await self.db[collection].update_one({"_id": leg_id}, {"$set": {"due_at": due_at}})
        return collection

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
        leg's ``deadlines``: it is deleted from each place it could be in, after the insert."""
        kept = None if due_at is None else await self.put(leg_id, request_id, due_at, now=now)
        places = {TIMERS, *(bucket_of(deadline) for deadline in deadlines)} - {kept}
        await asyncio.gather(*(self.db[c].delete_one({"_id": leg_id}) for c in sorted(places)))

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
        kept = None if due_at is None else await self.put(timer.leg_id, request_id, due_at, now=now)
        if kept != timer.collection:
            await self.db[timer.collection].delete_one({"_id": timer.leg_id})

    async def due(self, now: datetime) -> list[Timer]:
        """The timers due at ``now``, from the overdue collection and the begun buckets. On the
        way, overdue-collection timers not yet due go to their bucket, and emptied buckets past
        the grace are dropped."""
        names = await self.db.list_collection_names()
        due: list[Timer] = []
        for collection in to_scan(names, now=now):
            found = [doc async for doc in self.db[collection].find({})]
            if not found and drained(collection, now=now):
                await self.db[collection].drop()
            for doc in found:
                timer = Timer(str(doc["_id"]), aware(doc["due_at"]), collection)
                if timer.due_at <= now:
                    due.append(timer)
                elif collection == TIMERS:  # written before the buckets: into its bucket
                    await self.move(
                        timer, timer.due_at, request_id=str(doc.get("request_id", "")), now=now
                    )
        return due
