"""The batch runner: decide for a batch, apply it at once, commit per partition; rewind every
partition of the batch on a transient failure; dead-letter one bad record alone."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from aiokafka import TopicPartition
from pydantic import BaseModel
from pymongo import InsertOne, UpdateOne
from pymongo.errors import AutoReconnect, BulkWriteError, OperationFailure

from shared.batch import BatchRunner, by_key, partitions_of
from shared.bulk import BulkWriter
from shared.envelope import Envelope, utcnow
from shared.kafka import Outgoing
from shared.plans import Event, Insert, Outcome, Plan, Update
from shared.stage import DLQ_REASON, PermanentError, Record, Stage
from shared.topics import Topic

pytestmark = pytest.mark.unit


class Value(BaseModel):
    n: int


class FakeBus:
    """Stands in for EventBus: keeps what would have been published; can fail on demand."""

    def __init__(self) -> None:
        self.events: list[tuple[Topic, str, str]] = []
        self.dead: list[tuple[Topic, bytes | str | None, dict[str, str]]] = []
        self.fail_next = 0
        self.source = "test"

    def declare(self, topic: Topic, *, schema: Any = None) -> None:
        pass

    async def emit(self, topic: Topic, value: BaseModel, *, key: str, name: str, **kw: Any) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise AutoReconnect("broker away")
        self.events.append((topic, key, str(kw["event_id"])))

    def prepare(self, topic: Topic, value: BaseModel, *, key: str, name: str, **kw: Any) -> Any:
        event_id = str(kw["event_id"])
        envelope = Envelope(id=event_id, type=name, source="test", subject=key, time=utcnow())
        return Outgoing(topic, value.model_dump_json().encode(), key, envelope)

    async def emit_all(self, records: Sequence[Outgoing]) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise AutoReconnect("broker away")
        self.events.extend((r.topic, r.key, r.envelope.id) for r in records)

    async def emit_raw(
        self, topic: Topic, value: bytes, *, key: bytes | str | None, headers: Mapping[str, str]
    ) -> None:
        self.dead.append((topic, key, dict(headers)))


class FakeConsumer:
    def __init__(self, *partitions: TopicPartition) -> None:
        self.partitions = set(partitions)
        self.committed: dict[TopicPartition, int] = {}
        self.seeks: dict[TopicPartition, int] = {}

    def assignment(self) -> set[TopicPartition]:
        return self.partitions

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.committed.update(offsets)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks[tp] = offset


class FakeCollection:
    def __init__(self, store: dict[Any, dict[str, Any]], log: list[str], name: str) -> None:
        self.store = store
        self.log = log
        self.name = name

    async def bulk_write(self, operations: Sequence[Any], ordered: bool) -> None:
        errors = []
        for index, op in enumerate(operations):
            if isinstance(op, InsertOne):
                doc = op._doc
                if doc["_id"] in self.store:
                    errors.append({"index": index, "code": 11000})
                    continue
                self.store[doc["_id"]] = dict(doc)
                self.log.append(f"insert {self.name} {doc['_id']}")
            elif isinstance(op, UpdateOne):
                self.log.append(f"update {self.name} {op._filter['_id']}")
        if errors:
            raise BulkWriteError({"writeErrors": errors})


class FakeDb:
    def __init__(self) -> None:
        self.stores: dict[str, dict[Any, dict[str, Any]]] = defaultdict(dict)
        self.log: list[str] = []

    def __getitem__(self, name: str) -> FakeCollection:
        return FakeCollection(self.stores[name], self.log, name)


def record(offset: int, *, partition: int = 0, key: str = "r", value: bytes = b"{}") -> Record:
    return Record(
        topic="help.requests.submitted",
        partition=partition,
        offset=offset,
        key=key.encode(),
        value=value,
        headers={},
        timestamp_ms=0,
    )


TP0 = TopicPartition("help.requests.submitted", 0)
TP1 = TopicPartition("help.requests.submitted", 1)


def runner(bus: FakeBus, db: FakeDb | None = None) -> BatchRunner:
    stage = Stage(service="verify", bus=bus, retry_initial_seconds=0.0, retry_max_seconds=0.0)  # type: ignore[arg-type]
    return BatchRunner(stage, db=db, max_statements=2)  # type: ignore[arg-type]


def event_for(r: Record) -> Event:
    return Event(
        Topic.VERIFIED,
        Value(n=r.offset),
        key=(r.key or b"").decode(),
        name="x",
        event_id=f"e{r.offset}",
    )


async def no_careful(r: Record) -> None:
    raise AssertionError("nothing was redelivered")


def test_spans_and_groups() -> None:
    batch = [record(5), record(3, key="s"), record(9, partition=1), record(4)]
    assert partitions_of(batch) == {TP0: (3, 5), TP1: (9, 9)}
    assert [[r.offset for r in g] for g in by_key(batch)] == [[4, 5], [3], [9]]


async def test_a_batch_is_applied_then_committed_per_partition() -> None:
    bus, db = FakeBus(), FakeDb()
    batch = [record(10, key="a"), record(11, key="b"), record(3, partition=1, key="c")]

    async def plan(records: Sequence[Record]) -> list[Outcome]:
        return [
            Plan(
                guards=(Insert("decisions", {"_id": (r.key or b"").decode()}),),
                writes=(Update("counts", {"_id": "t"}, {"$set": {"n": 1}}),),
                events=(event_for(r),),
            )
            for r in records
        ]

    consumer = FakeConsumer(TP0, TP1)
    await runner(bus, db).run(batch, consumer, plan=plan, careful=no_careful)
    assert consumer.committed == {TP0: 12, TP1: 4}
    assert consumer.seeks == {}
    assert sorted(k for _, k, _ in bus.events) == ["a", "b", "c"]
    # Guards first (in chunks), then the other writes.
    assert db.log[:3] == ["insert decisions a", "insert decisions b", "insert decisions c"]
    assert db.log[3:] == ["update counts t"] * 3


async def test_a_transient_failure_rewinds_every_partition_and_commits_nothing() -> None:
    bus = FakeBus()
    bus.fail_next = 1
    batch = [record(10), record(11), record(3, partition=1, key="c")]

    async def plan(records: Sequence[Record]) -> list[Outcome]:
        return [Plan(events=(event_for(r),)) for r in records]

    consumer = FakeConsumer(TP0, TP1)
    await runner(bus).run(batch, consumer, plan=plan, careful=no_careful)
    assert consumer.committed == {}
    assert consumer.seeks == {TP0: 10, TP1: 3}


async def test_only_partitions_still_assigned_are_rewound() -> None:
    bus = FakeBus()
    bus.fail_next = 1

    async def plan(records: Sequence[Record]) -> list[Outcome]:
        return [Plan(events=(event_for(r),)) for r in records]

    consumer = FakeConsumer(TP1)
    await runner(bus).run(
        [record(1), record(2, partition=1)], consumer, plan=plan, careful=no_careful
    )
    assert consumer.seeks == {TP1: 2}


async def test_a_bad_record_is_dead_lettered_alone_and_the_rest_goes_on() -> None:
    bus = FakeBus()

    async def plan(records: Sequence[Record]) -> list[Outcome]:
        return [
            PermanentError("schema_violation", "x")
            if r.offset == 11
            else Plan(events=(event_for(r),))
            for r in records
        ]

    consumer = FakeConsumer(TP0)
    await runner(bus).run(
        [record(10), record(11), record(12)], consumer, plan=plan, careful=no_careful
    )
    assert [e for _, _, e in bus.events] == ["e10", "e12"]
    assert len(bus.dead) == 1
    assert bus.dead[0][2][DLQ_REASON] == "schema_violation"
    assert consumer.committed == {TP0: 13}


async def test_an_act_that_failed_for_good_dead_letters_its_record_with_its_effects() -> None:
    bus = FakeBus()
    db = FakeDb()

    def plan_for(r: Record) -> Plan:
        async def act() -> Plan:
            stored = Insert("outbox", {"_id": f"o{r.offset}"})
            if r.offset == 21:
                gave_up = PermanentError("delivery_failed", "sms:x", attempts=3)
                return Plan(writes=(stored,), events=(event_for(r),), dead=gave_up)
            return Plan(writes=(stored,), events=(event_for(r),))

        return Plan(act=act)

    async def plan(records: Sequence[Record]) -> list[Outcome]:
        return [plan_for(r) for r in records]

    consumer = FakeConsumer(TP0)
    await runner(bus, db).run([record(20), record(21)], consumer, plan=plan, careful=no_careful)
    assert [e for _, _, e in bus.events] == ["e20", "e21"], "its attempts are still announced"
    assert [(h[DLQ_REASON], h["dlq_attempts"], h["dlq_origin_offset"]) for _, _, h in bus.dead] == [
        ("delivery_failed", "3", "21")
    ]
    assert set(db.stores["outbox"]) == {"o20", "o21"}, "its effects are stored"
    assert consumer.committed == {TP0: 22}


async def test_a_planner_bug_is_isolated_to_the_record_that_causes_it() -> None:
    bus = FakeBus()

    async def plan(records: Sequence[Record]) -> list[Outcome]:
        if any(r.offset == 2 for r in records):
            raise KeyError("a rule nobody foresaw")
        return [Plan(events=(event_for(r),)) for r in records]

    consumer = FakeConsumer(TP0)
    await runner(bus).run(
        [record(1), record(2), record(3)], consumer, plan=plan, careful=no_careful
    )
    assert [e for _, _, e in bus.events] == ["e1", "e3"]
    assert [h[DLQ_REASON] for _, _, h in bus.dead] == ["unexpected_error"]
    assert consumer.committed == {TP0: 4}


async def test_an_existing_guard_sends_the_record_down_the_careful_path() -> None:
    bus, db = FakeBus(), FakeDb()
    db.stores["decisions"]["a"] = {"_id": "a"}
    careful: list[int] = []

    async def plan(records: Sequence[Record]) -> list[Outcome]:
        return [
            Plan(
                guards=(Insert("decisions", {"_id": (r.key or b"").decode()}),),
                events=(event_for(r),),
            )
            for r in records
        ]

    async def finish(r: Record) -> None:
        careful.append(r.offset)

    consumer = FakeConsumer(TP0)
    batch = [record(1, key="a"), record(2, key="b"), record(3, key="b")]
    await runner(bus, db).run(batch, consumer, plan=plan, careful=finish)
    # "a" existed before; the second "b" repeats the first one's cause in the same batch.
    assert careful == [1, 3]
    assert [e for _, _, e in bus.events] == ["e2"]
    assert consumer.committed == {TP0: 4}


async def test_a_write_the_server_refuses_is_retried_then_dead_lettered_alone() -> None:
    bus, db = FakeBus(), FakeDb()

    class Refusing(FakeDb):
        def __getitem__(self, name: str) -> FakeCollection:
            collection = super().__getitem__(name)

            async def refuse(operations: Sequence[Any], ordered: bool) -> None:
                if any(
                    isinstance(op, UpdateOne) and op._filter["_id"] == "bad" for op in operations
                ):
                    raise OperationFailure("refused", code=2)
                await FakeCollection.bulk_write(collection, operations, ordered)

            collection.bulk_write = refuse  # type: ignore[method-assign]
            return collection

    db = Refusing()

    async def plan(records: Sequence[Record]) -> list[Outcome]:
        return [
            Plan(writes=(Update("x", {"_id": "bad" if r.offset == 2 else "ok"}, {"$set": {}}),))
            for r in records
        ]

    consumer = FakeConsumer(TP0)
    await runner(bus, db).run(
        [record(1), record(2), record(3)], consumer, plan=plan, careful=no_careful
    )
    assert [h[DLQ_REASON] for _, _, h in bus.dead] == ["unexpected_error"]
    assert consumer.committed == {TP0: 4}


async def test_per_record_handlers_keep_one_keys_order_and_commit_once() -> None:
    bus = FakeBus()
    seen: list[tuple[str, int]] = []

    async def handler(r: Record) -> None:
        seen.append(((r.key or b"").decode(), r.offset))

    consumer = FakeConsumer(TP0)
    batch = [record(1, key="a"), record(2, key="b"), record(3, key="a")]
    await runner(bus).each(batch, consumer, handler=handler)
    assert [o for k, o in seen if k == "a"] == [1, 3]
    assert consumer.committed == {TP0: 4}


async def test_per_record_transient_failure_rewinds_the_batch() -> None:
    bus = FakeBus()

    async def handler(r: Record) -> None:
        if r.offset == 2:
            raise AutoReconnect("database away")

    consumer = FakeConsumer(TP0, TP1)
    await runner(bus).each(
        [record(1), record(2, key="b"), record(7, partition=1)], consumer, handler=handler
    )
    assert consumer.committed == {}
    assert consumer.seeks == {TP0: 1, TP1: 7}


async def test_an_ordinary_batch_gives_way_to_an_urgent_one_in_flight() -> None:
    bus = FakeBus()
    batches = runner(bus)
    batches.urgent_wait_seconds = 5.0
    steps: list[str] = []
    urgent_planning = asyncio.Event()
    release = asyncio.Event()

    async def urgent_plan(records: Sequence[Record]) -> list[Outcome]:
        steps.append("urgent planned")
        urgent_planning.set()
        await release.wait()
        return [Plan(events=(event_for(r),)) for r in records]

    async def ordinary_plan(records: Sequence[Record]) -> list[Outcome]:
        steps.append("ordinary planned")
        return [Plan(events=(event_for(r),)) for r in records]

    urgent = asyncio.create_task(
        batches.run(
            [record(1)], FakeConsumer(TP0), plan=urgent_plan, careful=no_careful, urgent=True
        )
    )
    await urgent_planning.wait()
    ordinary = asyncio.create_task(
        batches.run(
            [record(2, partition=1)], FakeConsumer(TP1), plan=ordinary_plan, careful=no_careful
        )
    )
    for _ in range(20):
        await asyncio.sleep(0)
    assert steps == ["urgent planned"], "the ordinary batch waits while the urgent one is on"
    release.set()
    await asyncio.gather(urgent, ordinary)
    assert steps == ["urgent planned", "ordinary planned"]


async def test_an_ordinary_batch_waits_a_bounded_time_for_a_slow_urgent_one() -> None:
    bus = FakeBus()
    batches = runner(bus)
    batches.urgent_wait_seconds = 0.01
    release = asyncio.Event()
    consumer = FakeConsumer(TP1)

    async def urgent_plan(records: Sequence[Record]) -> list[Outcome]:
        await release.wait()
        return [None for _ in records]

    async def ordinary_plan(records: Sequence[Record]) -> list[Outcome]:
        return [Plan(events=(event_for(r),)) for r in records]

    urgent = asyncio.create_task(
        batches.run(
            [record(1)], FakeConsumer(TP0), plan=urgent_plan, careful=no_careful, urgent=True
        )
    )
    await asyncio.sleep(0)
    await asyncio.wait_for(
        batches.run([record(7, partition=1)], consumer, plan=ordinary_plan, careful=no_careful),
        timeout=2.0,
    )
    assert consumer.committed == {TP1: 8}, "done while the urgent batch still waits"
    assert not urgent.done()
    release.set()
    await urgent


async def test_the_collections_of_a_batch_are_written_together() -> None:
    started: list[str] = []
    both = asyncio.Event()

    class Collection:
        def __init__(self, name: str) -> None:
            self.name = name

        async def bulk_write(self, operations: Sequence[Any], ordered: bool) -> None:
            started.append(self.name)
            if len(started) == 2:
                both.set()
            await asyncio.wait_for(both.wait(), timeout=2.0)

    class Db:
        def __getitem__(self, name: str) -> Collection:
            return Collection(name)

    writer = BulkWriter(Db())  # type: ignore[arg-type]
    await writer.apply([Insert("legs", {"_id": 1}), Insert("sla_timers", {"_id": 1})])
    assert sorted(started) == ["legs", "sla_timers"], "the second began before the first ended"
