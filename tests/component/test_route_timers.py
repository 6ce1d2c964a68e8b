"""Route's service-level timers in their minute buckets (``services/route/timer_store.py``): a
scan reads what is due, a timer left behind by a move is harmless, emptied buckets go, and a
deadline is escalated once however many processes scan."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest

from services.route import timer_store
from services.route.handlers import timers
from services.route.timer_store import TIMERS, bucket_of, place
from tests.component.test_route_handlers import Harness, route

pytestmark = pytest.mark.integration

__all__ = ["route"]  # the fixture, shared with route's handler tests


async def medical_leg(route: Harness) -> tuple[str, dict[str, object]]:
    request_id = await route.verified(category="medical", description="透析时间到了", priority="P1")
    [job] = route.jobs("medical", request_id)
    return request_id, job


def deadline(job: dict[str, object], name: str) -> datetime:
    return datetime.fromisoformat(str(job[name]))


async def test_two_processes_scanning_at_once_escalate_a_deadline_once(route: Harness) -> None:
    request_id, job = await medical_leg(route)
    assert await route.timers_of(str(job["leg_id"])) == [bucket_of(deadline(job, "acknowledge_by"))]
    now = deadline(job, "acknowledge_by") + timedelta(minutes=1)
    other = route.restarted()
    counts = await asyncio.gather(
        timers.scan_deadlines(route.ctx, now=now, owner="a"),
        timers.scan_deadlines(other.ctx, now=now, owner="b"),
    )
    assert sorted(counts) == [0, 1]
    assert [r for _, r in route.lifecycle(request_id) + other.lifecycle(request_id)] == [
        "sla_acknowledge"
    ]
    # The timer moved on to the resolve deadline (its hour's bucket: two hours ahead).
    resolve = place(deadline(job, "resolve_by"), now=now)
    assert resolve == timer_store.HOUR.name(deadline(job, "resolve_by"))
    assert await route.timers_of(str(job["leg_id"])) == [resolve]


async def test_a_timer_left_behind_by_a_move_is_read_and_removed(route: Harness) -> None:
    request_id, job = await medical_leg(route)
    leg_id = str(job["leg_id"])
    await route.status(request_id, "medical", "acknowledged")
    resolve = place(deadline(job, "resolve_by"), now=deadline(job, "dispatched_at"))
    assert await route.timers_of(leg_id) == [resolve]
    # As a crash between the move's insert and its delete leaves it:
    acknowledge_by = deadline(job, "acknowledge_by")
    await route.db[bucket_of(acknowledge_by)].insert_one(
        timer_store.document(leg_id, request_id, acknowledge_by)
    )
    now = acknowledge_by + timedelta(minutes=1)
    assert await timers.scan_deadlines(route.ctx, now=now) == 0
    assert route.lifecycle(request_id) == [("acknowledged", None)], "nothing escalated"
    assert await route.timers_of(leg_id) == [resolve]


async def test_timers_from_before_the_buckets_move_into_them_and_still_fire(
    route: Harness,
) -> None:
    request_id, job = await medical_leg(route)
    leg_id = str(job["leg_id"])
    acknowledge_by = deadline(job, "acknowledge_by")
    bucket = bucket_of(acknowledge_by)
    await route.db[bucket].delete_one({"_id": leg_id})
    await route.db[TIMERS].insert_one(timer_store.document(leg_id, request_id, acknowledge_by))

    dispatched = deadline(job, "dispatched_at")
    assert await timers.scan_deadlines(route.ctx, now=dispatched) == 0
    assert await route.timers_of(leg_id) == [bucket]
    assert await timers.scan_deadlines(route.ctx, now=acknowledge_by + timedelta(seconds=1)) == 1


async def test_an_emptied_bucket_is_dropped_once_its_minute_is_past_the_grace(
    route: Harness,
) -> None:
    request_id, job = await medical_leg(route)
    await route.status(request_id, "medical", "acknowledged")
    bucket = bucket_of(deadline(job, "acknowledge_by"))
    assert bucket in await route.db.list_collection_names(), "emptied, not dropped"
    start = timer_store.bucket_start(bucket)
    assert start is not None
    end = start + timer_store.MINUTE.step
    assert await timers.scan_deadlines(route.ctx, now=end) == 0
    assert bucket in await route.db.list_collection_names(), "within the grace"
    assert await timers.scan_deadlines(route.ctx, now=end + timer_store.DRAIN_GRACE) == 0
    assert bucket not in await route.db.list_collection_names()
    resolve_by = deadline(job, "resolve_by")
    assert await route.timers_of(str(job["leg_id"])) == [
        place(resolve_by, now=deadline(job, "dispatched_at"))
    ]


async def test_an_hour_bucket_goes_into_minute_buckets_before_its_hour_and_fires(
    route: Harness,
) -> None:
    request_id, job = await medical_leg(route)
    leg_id = str(job["leg_id"])
    await route.status(request_id, "medical", "acknowledged")
    resolve_by = deadline(job, "resolve_by")
    hour = timer_store.HOUR.name(resolve_by)
    assert await route.timers_of(leg_id) == [hour]
    start = timer_store.bucket_start(hour)
    assert start is not None
    before = start - timer_store.HOUR.ahead - timedelta(seconds=1)
    assert await timers.scan_deadlines(route.ctx, now=before) == 0
    assert await route.timers_of(leg_id) == [hour], "not read yet"
    read = start - timer_store.HOUR.ahead
    assert await timers.scan_deadlines(route.ctx, now=read) == 0
    assert await route.timers_of(leg_id) == [bucket_of(resolve_by)]
    assert await timers.scan_deadlines(route.ctx, now=read) == 0
    assert hour not in await route.db.list_collection_names(), "emptied and read: dropped"
    assert await timers.scan_deadlines(route.ctx, now=resolve_by + timedelta(seconds=1)) == 1
    assert [r for _, r in route.lifecycle(request_id)] == [None, "sla_resolve"]


async def acknowledged_leg(route: Harness) -> tuple[str, str, datetime]:
    """A leg acknowledged: its timer waits for the resolve deadline in that hour's bucket."""
    request_id, job = await medical_leg(route)
    await route.status(request_id, "medical", "acknowledged")
    resolve_by = deadline(job, "resolve_by")
    assert await route.timers_of(str(job["leg_id"])) == [timer_store.HOUR.name(resolve_by)]
    return request_id, str(job["leg_id"]), resolve_by


async def test_an_insert_that_lands_while_its_bucket_is_handed_on_is_not_lost(
    route: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    request_id, leg_id, resolve_by = await acknowledged_leg(route)
    hour = timer_store.HOUR.name(resolve_by)
    [late] = [doc async for doc in route.db[hour].find({"_id": leg_id})]
    await route.db[hour].delete_one({"_id": leg_id})
    # The timer's insert was decided before writers stopped choosing the hour bucket and
    # lands while the scan hands that bucket on: after its read, before it is gone.
    store = route.ctx.repo.timers
    retire, hand_on = store._retire, store._hand_on
    retiring: list[str] = []
    landed: list[str] = []

    async def tracked(collection: str, *, now: datetime) -> list[timer_store.Timer]:
        retiring.append(collection)
        return await retire(collection, now=now)

    async def landing(found: list[dict[str, object]], *, now: datetime) -> list[timer_store.Timer]:
        if retiring[-1:] == [hour] and not landed:
            landed.append(hour)
            await route.db[hour].insert_one(late)
        return await hand_on(found, now=now)

    monkeypatch.setattr(store, "_retire", tracked)
    monkeypatch.setattr(store, "_hand_on", landing)
    start = timer_store.bucket_start(hour)
    assert start is not None
    read = start - timer_store.HOUR.ahead
    assert await timers.scan_deadlines(route.ctx, now=read) == 0
    assert landed == [hour]
    assert await route.timers_of(leg_id) == [hour], "it came back under the bucket's name"
    assert await timers.scan_deadlines(route.ctx, now=read + timedelta(seconds=5)) == 0
    assert await route.timers_of(leg_id) == [bucket_of(resolve_by)]
    assert await timers.scan_deadlines(route.ctx, now=resolve_by + timedelta(seconds=1)) == 1
    assert [r for _, r in route.lifecycle(request_id)] == [None, "sla_resolve"]


async def test_a_retired_bucket_is_dropped_after_its_grace_with_what_landed_in_it(
    route: Harness,
) -> None:
    _, first, resolve_by = await acknowledged_leg(route)
    request_id, second, second_resolve_by = await acknowledged_leg(route)
    [late] = await route.timers_of(second)
    [doc] = [d async for d in route.db[late].find({"_id": second})]
    await route.db[late].delete_one({"_id": second})
    hour = timer_store.HOUR.name(resolve_by)
    start = timer_store.bucket_start(hour)
    assert start is not None
    read = start - timer_store.HOUR.ahead
    assert await timers.scan_deadlines(route.ctx, now=read) == 0
    assert await route.timers_of(first) == [bucket_of(resolve_by)]
    [retired] = [
        name
        for name in await route.db.list_collection_names()
        if name.startswith(timer_store.retired_name(hour, now=read).rsplit("_", 1)[0])
    ]
    # An insert in flight when the bucket was renamed lands in the retired one.
    await route.db[retired].insert_one(doc)
    assert await route.timers_of(second) == []
    grace = read + timer_store.RETIRE_GRACE
    assert await timers.scan_deadlines(route.ctx, now=grace - timedelta(seconds=1)) == 0
    assert retired in await route.db.list_collection_names(), "within its grace"
    assert await route.timers_of(second) == []
    assert await timers.scan_deadlines(route.ctx, now=grace) == 0
    assert retired not in await route.db.list_collection_names()
    assert await route.timers_of(second) == [place(second_resolve_by, now=grace)]
    assert await route.timers_of(first) == [bucket_of(resolve_by)]
    later = max(resolve_by, second_resolve_by) + timedelta(seconds=1)
    assert await timers.scan_deadlines(route.ctx, now=later) == 2
    assert [r for _, r in route.lifecycle(request_id)] == [None, "sla_resolve"]
