"""The command centre's re-dispatch applied, on the real database with a recording bus: a publish
that fails after the hand-over is finished by the retry and the job goes out once; the team
counters move once; the oversight leg of a missed deadline takes the job from the team that
missed it, whose later reports change nothing.

Marked ``integration``: it needs the database (not the broker)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime, timedelta

import pytest

from services.route import actions
from services.route.handlers import timers
from services.route.redispatch import Ask, Refusal
from shared.topics import Topic
from tests.component.test_route_handlers import Harness, RecordingBus, route

pytestmark = pytest.mark.integration

__all__ = ["route"]  # the fixture, shared with route's handler tests


class FailingOnce(RecordingBus):
    """Refuses the first job for one topic, as a broker that is away for a moment."""

    def __init__(self, topic: Topic) -> None:
        super().__init__()
        self.topic, self.failed = topic, False

    async def emit_raw(
        self, topic: Topic, value: bytes, *, key: bytes | str | None, headers: Mapping[str, str]
    ) -> None:
        if topic == self.topic and not self.failed:
            self.failed = True
            raise ConnectionError("broker unavailable")
        await super().emit_raw(topic, value, key=key, headers=headers)


async def owned_leg(route: Harness) -> tuple[str, str]:
    request_id = await route.verified(category="education", description="孩子发烧，需要退烧药")
    await route.status(request_id, "community", "rejected", note="不是教育问题")
    await route.status(request_id, "community", "rejected", note="也不归我们")
    [command] = route.jobs("command", request_id)
    return request_id, str(command["leg_id"])


async def test_a_failed_publish_is_finished_by_the_retry_and_sent_once(route: Harness) -> None:
    request_id, leg_id = await owned_leg(route)
    failing = FailingOnce(Topic.DISPATCH_MEDICAL)
    ctx = dataclasses.replace(route.ctx, bus=failing)
    ask = Ask(desk="desk-1", reason="a sick child", category="medical")
    before = await route.open_legs("command-centre")

    with pytest.raises(ConnectionError):
        await actions.redispatch_leg(ctx, leg_id, ask)
    done = await actions.redispatch_leg(ctx, leg_id, ask)
    assert isinstance(done, actions.Redispatched)
    assert done.replayed is True  # the hand-over was stored before the publish failed
    again = await actions.redispatch_leg(ctx, leg_id, Ask(desk="desk-2", reason="x"))
    assert isinstance(again, actions.Redispatched)
    assert again.job.leg_id == done.job.leg_id

    [job] = failing.on(Topic.DISPATCH_MEDICAL)
    assert (job["leg_id"], job["category"], job["reason"]) == (
        done.job.leg_id,
        "medical",
        "a sick child",
    )
    assert await route.open_legs("command-centre") == before - 1
    assert await route.open_legs(done.job.team_id) == 1
    record = await route.request(request_id)
    assert record["category"] == "medical"
    entries = [e for e in record["timeline"] if e["actor"] == "command:desk-1"]
    assert [e["reason"] for e in entries] == ["a sick child"]
    old = await route.db["legs"].find_one({"_id": leg_id})
    assert old is not None
    assert (old["current"], old["superseded_by"], old["status"]) == (
        False,
        done.job.leg_id,
        "redispatched",
    )

    # The new leg is a work leg like any other: the medical team's report moves it.
    await route.restarted().status(request_id, "medical", "acknowledged", leg_id=done.job.leg_id)
    leg = await route.db["legs"].find_one({"_id": done.job.leg_id})
    assert leg is not None
    assert leg["progress"] == "acknowledged"


async def test_a_missed_deadline_is_taken_from_the_team_that_missed_it(route: Harness) -> None:
    request_id = await route.verified(category="medical", description="透析时间到了", priority="P1")
    [job] = route.jobs("medical", request_id)
    dispatched = datetime.fromisoformat(job["dispatched_at"])
    assert await timers.scan_deadlines(route.ctx, now=dispatched + timedelta(minutes=16)) == 1
    [oversight] = route.jobs("command", request_id)

    refused = await actions.redispatch_leg(
        route.ctx, job["leg_id"], Ask(desk="desk-1", reason="x", department="medical")
    )
    assert isinstance(refused, Refusal)
    assert refused.code == "not_command_leg"

    done = await actions.redispatch_leg(
        route.ctx,
        oversight["leg_id"],
        Ask(desk="desk-1", reason="team unreachable", department="medical"),
    )
    assert isinstance(done, actions.Redispatched)
    assert set(done.replaced) == {oversight["leg_id"], job["leg_id"]}
    assert done.job.team_id != job["team_id"]
    assert await route.open_legs(job["team_id"]) == 0
    assert await route.timers_of(job["leg_id"]) == []
    [_, again] = route.jobs("medical", request_id)
    assert again["leg_id"] == done.job.leg_id

    # The team that missed it reports late: its leg was handed over, nothing moves.
    await route.status(request_id, "medical", "resolved", leg_id=job["leg_id"])
    old = await route.db["legs"].find_one({"_id": job["leg_id"]})
    assert old is not None
    assert (old["progress"], old["history"][-1]["outcome"]) == ("dispatched", "closed")
    assert (await route.request(request_id))["status"] != "resolved"
