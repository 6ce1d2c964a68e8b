"""What a stage's rule returns for one record: the plan the batch runner applies
(``shared/batch.py``). Rules build these from what they read and decide; they do no I/O."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Final, TypeAlias

from pydantic import BaseModel

from shared.db import Document
from shared.envelope import Envelope
from shared.kafka import EventBus, Outgoing
from shared.stage import PermanentError, Record
from shared.topics import Topic


@dataclass(frozen=True, slots=True)
class Insert:
    """A document keyed by its cause: inserting it twice changes nothing."""

    collection: str
    document: Document


@dataclass(frozen=True, slots=True)
class Update:
    """An idempotent update (``$set``, ``$addToSet``, ``$max``…) of one document by ``_id``."""

    collection: str
    filter: Document
    update: Document
    upsert: bool = False


Write: TypeAlias = Insert | Update


@dataclass(frozen=True, slots=True)
class Event:
    """An event to publish: key = request id, event id derived from its cause."""

    topic: Topic
    value: BaseModel
    key: str
    name: str
    event_id: str
    cause: Envelope | None = None

    async def publish(self, bus: EventBus) -> Envelope:
        """Publish it now and wait for the broker's acknowledgement (the per-record path; the
        batch runner sends a batch's events together)."""
        record = self.outgoing(bus)
        await bus.emit_one(record)
        return record.envelope

    def outgoing(self, bus: EventBus) -> Outgoing:
        """The record to publish, for the batch runner's :meth:`EventBus.emit_all`."""
        return bus.prepare(
            self.topic,
            self.value,
            key=self.key,
            name=self.name,
            event_id=self.event_id,
            cause=self.cause,
        )


@dataclass(frozen=True)
class Plan:
    """What one record's rule decided: writes, events, and what to count once it is done.

    ``guards`` are inserts keyed by the record's cause, applied first: if any existed already,
    the record was applied before and goes down the careful path instead. ``act`` is an outside
    effect (a message to a gateway) run once the guards are in, concurrently with the batch's
    other acts; the plan it returns (what to store and announce about it) is applied with the
    batch's writes and events (and ``dead`` dead-letters the record). ``recorded`` is written
    after the batch's events are acknowledged (what says that they went out)."""

    writes: tuple[Write, ...] = ()
    events: tuple[Event, ...] = ()
    guards: tuple[Insert, ...] = ()
    # Written once the events are acknowledged: what says they went out.
    recorded: tuple[Write, ...] = ()
    act: Callable[[], Awaitable[Plan]] | None = None
    done: Callable[[], None] | None = None
    # In the plan an act returns: the record goes to the dead letters once the batch's writes
    # are stored (the outside effect failed for good).
    dead: PermanentError | None = None


class Deferred:
    """The outcome of a record that its stage handles alone, on the careful path."""


DEFER: Final = Deferred()

Outcome: TypeAlias = Plan | PermanentError | Deferred | None
Planner = Callable[[Sequence[Record]], Awaitable[Sequence[Outcome]]]
Careful = Callable[[Record], Awaitable[None]]
Handler = Callable[[Record], Awaitable[None]]


# Records a planner decides between two turns of the event loop.
TURN: Final = 16


async def take_turns(index: int) -> None:
    """Let the event loop run other work after every :data:`TURN` records a planner has
    decided: a process's lanes share one loop, so an urgent record waits for at most a few
    records of an ordinary batch, not for all of its planning (a pure loop never yields)."""
    if index % TURN == TURN - 1:
        await asyncio.sleep(0)
