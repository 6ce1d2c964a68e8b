"""Route's handlers on the real database with a recording event bus: dispatch of several legs,
department reports (duplicates, stale and out-of-order), rejection → re-route → command centre,
deadlines escalated once across restarts, reopened and closed requests.

Marked ``integration``: it needs the database (not the broker)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from services.route import domain, handlers, timer_store
from services.route.handlers import RouteContext, timers
from services.route.repository import RouteRepository
from services.route.teams import load_directory
from shared.kafka import EventBus
from shared.metrics import SLA_BREACHES
from shared.settings import CONFIG_DIR
from shared.stage import PermanentError, Record
from shared.topics import Topic, TopicNames

pytestmark = pytest.mark.integration

T0 = datetime(2026, 1, 9, 14, 0, tzinfo=UTC)


class RecordingBus(EventBus):
    """Keeps what route publishes instead of sending it to a broker."""

    def __init__(self) -> None:
        super().__init__(None, TopicNames(""), source="cityhelp/route")  # type: ignore[arg-type]
        self.sent: list[tuple[Topic, dict[str, Any], dict[str, str]]] = []

    async def emit_raw(
        self, topic: Topic, value: bytes, *, key: bytes | str | None, headers: Mapping[str, str]
    ) -> None:
        self.sent.append((topic, json.loads(value), dict(headers)))

    def on(self, topic: Topic) -> list[dict[str, Any]]:
        return [value for t, value, _ in self.sent if t == topic]


@dataclass
class Harness:
    ctx: RouteContext
    bus: RecordingBus
    db: Any
    offsets: list[int] = field(default_factory=lambda: [0])

    def record(self, topic: Topic, value: dict[str, Any]) -> Record:
        self.offsets[0] += 1
        return Record(
            topic=topic.value,
            partition=0,
            offset=self.offsets[0],
            key=str(value.get("request_id", "")).encode(),
            value=json.dumps(value, default=str).encode(),
            headers={},
            timestamp_ms=0,
        )

    async def verified(self, **overrides: Any) -> str:
        request_id = overrides.pop("request_id", f"r-{uuid.uuid4().hex[:8]}")
        value = {
            "request_id": request_id,
            "submitted_at": T0.isoformat(),
            "verified_at": T0.isoformat(),
            "channel": "web",
            "category": "food_supply",
            "description": "老人独居，家里没有吃的，胰岛素也快用完了",
            "contact": {"name": "王女士", "phone": "+8613800138000"},
            "location": {"district": "jinshui", "address": "金水路 1 号"},
            "special_groups": ["elderly", "living_alone"],
            "language": "zh",
            "priority": "P2",
            **overrides,
        }
        # The request record intake and verify keep (route only adds to it).
        await self.db["requests"].update_one(
            {"_id": request_id},
            {"$setOnInsert": {"status": "verified", "timeline": [], "applied_events": []}},
            upsert=True,
        )
        await handlers.handle_verified(self.record(Topic.VERIFIED, value), ctx=self.ctx)
        return str(request_id)

    async def status(self, request_id: str, department: str, status: str, **extra: Any) -> None:
        value = {
            "event_id": extra.pop("event_id", uuid.uuid4().hex),
            "request_id": request_id,
            "department": department,
            "status": status,
            "occurred_at": extra.pop("occurred_at", datetime.now(UTC)).isoformat(),
            **extra,
        }
        await handlers.handle_status(self.record(Topic.STATUS, value), ctx=self.ctx)

    def jobs(self, department: str, request_id: str) -> list[dict[str, Any]]:
        topic = {
            "police": Topic.DISPATCH_POLICE,
            "community": Topic.DISPATCH_COMMUNITY,
            "medical": Topic.DISPATCH_MEDICAL,
            "command": Topic.DISPATCH_COMMAND,
        }[department]
        return [j for j in self.bus.on(topic) if j["request_id"] == request_id]

    def lifecycle(self, request_id: str) -> list[tuple[str, str | None]]:
        return [
            (e["status"], e.get("reason"))
            for e in self.bus.on(Topic.LIFECYCLE)
            if e["request_id"] == request_id
        ]

    async def request(self, request_id: str) -> dict[str, Any]:
        doc = await self.db["requests"].find_one({"_id": request_id})
        assert doc is not None
        return dict(doc)

    async def open_legs(self, team_id: str) -> int:
        doc = await self.db["teams"].find_one({"_id": team_id})
        assert doc is not None
        return int(doc["open_legs"])

    async def timers_of(self, leg_id: str) -> list[str]:
        """The timer collections (``services/route/timer_store.py``) that hold the leg; a
        retired bucket's copy, handed on already, is not counted."""
        return [
            name
            for name in sorted(await self.db.list_collection_names())
            if name.startswith("sla_timers")
            and not name.startswith(timer_store.RETIRED_PREFIX)
            and await self.db[name].find_one({"_id": leg_id})
        ]

    def restarted(self) -> Harness:
        """A fresh route process: new context and bus, same database."""
        bus = RecordingBus()
        ctx = RouteContext(
            bus=bus,
            repo=RouteRepository(self.db),
            rules=self.ctx.rules,
            levels=self.ctx.levels,
            directory=self.ctx.directory,
        )
        return Harness(ctx, bus, self.db, self.offsets)


@pytest.fixture
async def route(mongodb_uri: str) -> AsyncIterator[Harness]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_uri, tz_aware=True)
    name = f"test_route_{uuid.uuid4().hex[:10]}"
    db = client[name]
    bus = RecordingBus()
    ctx = RouteContext(
        bus=bus,
        repo=RouteRepository(db),
        rules=domain.load_rules(CONFIG_DIR / "routing.toml"),
        levels=domain.load_service_levels(CONFIG_DIR / "service_levels.toml"),
        directory=load_directory(CONFIG_DIR / "teams.toml"),
    )
    await ctx.repo.sync_teams(ctx.directory)
    try:
        yield Harness(ctx, bus, db)
    finally:
        await client.drop_database(name)
        await client.close()


async def test_food_and_medicine_become_two_legs_resolved_one_by_one(route: Harness) -> None:
    request_id = await route.verified()
    [community] = route.jobs("community", request_id)
    [medical] = route.jobs("medical", request_id)
    assert (community["team_id"], community["rule_id"]) == (
        "community-jinshui-1",
        "default:food_supply",
    )
    assert (medical["team_id"], medical["rule_id"]) == (
        "medical-jinshui-1",
        "food-medicine-also-medical",
    )
    assert community["rule_version"] == route.ctx.rules.version
    assert community["contact"]["phone"] == "+8613800138000"
    assert community["acknowledge_by"] == (
        datetime.fromisoformat(community["dispatched_at"]) + timedelta(hours=1)
    ).isoformat().replace("+00:00", "Z")
    assert await route.open_legs("community-jinshui-1") == 1

    # A redelivered verified request dispatches nothing new.
    await route.verified(request_id=request_id)
    assert len(route.jobs("community", request_id)) == 1
    assert await route.open_legs("community-jinshui-1") == 1

    await route.status(request_id, "community", "acknowledged")
    await route.status(request_id, "medical", "resolved", leg_id=medical["leg_id"])
    assert route.lifecycle(request_id) == [("acknowledged", None), ("in_progress", None)]
    await route.status(request_id, "community", "resolved", note="送到了")
    assert route.lifecycle(request_id)[-1] == ("resolved", None)
    resolved = route.bus.on(Topic.LIFECYCLE)[-1]
    assert resolved["contact"]["phone"] == "+8613800138000"
    assert (resolved["category"], resolved["priority"], resolved["language"]) == (
        "food_supply",
        "P2",
        "zh",
    )

    doc = await route.request(request_id)
    assert doc["status"] == "resolved"
    assert sorted((leg["department"], leg["status"]) for leg in doc["legs"]) == [
        ("community", "resolved"),
        ("medical", "resolved"),
    ]
    assert doc["departments"] == ["community", "medical"]
    assert await route.open_legs("community-jinshui-1") == 0
    assert await route.open_legs("medical-jinshui-1") == 0


async def test_duplicate_stale_and_late_reports_never_move_a_leg_back(route: Harness) -> None:
    request_id = await route.verified(category="medical", description="需要买降压药")
    [job] = route.jobs("medical", request_id)
    now = datetime.now(UTC)
    await route.status(request_id, "medical", "in_progress", event_id="e2", occurred_at=now)
    await route.status(request_id, "medical", "in_progress", event_id="e2", occurred_at=now)
    await route.status(
        request_id, "medical", "acknowledged", event_id="e1", occurred_at=now - timedelta(minutes=1)
    )
    await route.status(
        request_id, "medical", "resolved", event_id="e3", occurred_at=now + timedelta(minutes=5)
    )
    await route.status(
        request_id, "medical", "acknowledged", event_id="e4", occurred_at=now + timedelta(minutes=9)
    )
    leg = await route.db["legs"].find_one({"_id": job["leg_id"]})
    assert leg is not None
    assert leg["progress"] == "resolved"
    assert [(h["event_id"], h["outcome"]) for h in leg["history"]] == [
        ("e2", "apply"),
        ("e1", "stale"),
        ("e3", "apply"),
        ("e4", "closed"),
    ]
    assert [s for s, _ in route.lifecycle(request_id)] == ["in_progress", "resolved"]
    assert (await route.request(request_id))["status"] == "resolved"


async def test_reports_for_unknown_requests_or_legs_are_dead_letters(route: Harness) -> None:
    with pytest.raises(PermanentError) as unknown:
        await route.status("r-nobody", "medical", "acknowledged")
    assert unknown.value.reason == "unknown_leg"
    request_id = await route.verified(category="medical", description="需要买药")
    with pytest.raises(PermanentError):
        await route.status(request_id, "police", "acknowledged")
    with pytest.raises(PermanentError):
        await route.status(request_id, "medical", "acknowledged", leg_id="no-such-leg")


async def test_rejected_twice_lands_with_the_command_centre(route: Harness) -> None:
    request_id = await route.verified(category="education", description="孩子网课没有电脑")
    [first] = route.jobs("community", request_id)
    assert first["team_id"] == "community-jinshui-1"

    await route.status(request_id, "community", "rejected", note="不在我们片区")
    [_, second] = route.jobs("community", request_id)
    assert (second["team_id"], second["attempt"]) == ("community-jinshui-2", 2)
    assert second["leg_id"] != first["leg_id"]
    assert await route.open_legs("community-jinshui-1") == 0
    assert route.jobs("command", request_id) == []

    # No leg id echoed: the lookup finds the department's current leg.
    await route.status(request_id, "community", "rejected", note="人手不够")
    [command] = route.jobs("command", request_id)
    assert (command["team_id"], command["attempt"]) == ("command-centre", 3)
    assert "rejected_twice" in (command["reason"] or "")
    assert route.lifecycle(request_id) == [("escalated", "rejected_twice")]

    # The command centre owns it: its rejection is recorded, nothing moves.
    await route.status(request_id, "command", "rejected", leg_id=command["leg_id"])
    assert len(route.jobs("command", request_id)) == 1
    await route.status(request_id, "command", "resolved", leg_id=command["leg_id"])
    doc = await route.request(request_id)
    assert doc["status"] == "resolved"
    assert [(leg["department"], leg["status"], leg["current"]) for leg in doc["legs"]] == [
        ("community", "rejected", False),
        ("community", "rejected", False),
        ("command", "resolved", True),
    ]


async def test_deadlines_escalate_once_each_across_restarts(route: Harness) -> None:
    request_id = await route.verified(category="medical", description="透析时间到了", priority="P1")
    [job] = route.jobs("medical", request_id)
    dispatched = datetime.fromisoformat(job["dispatched_at"])
    before = SLA_BREACHES.labels("acknowledge", "medical", "P1")._value.get()

    assert await timers.scan_deadlines(route.ctx, now=dispatched + timedelta(minutes=14)) == 0
    assert await timers.scan_deadlines(route.ctx, now=dispatched + timedelta(minutes=16)) == 1
    restarted = route.restarted()
    assert await timers.scan_deadlines(restarted.ctx, now=dispatched + timedelta(minutes=17)) == 0
    assert SLA_BREACHES.labels("acknowledge", "medical", "P1")._value.get() == before + 1

    [oversight] = route.jobs("command", request_id)
    assert oversight["reason"].startswith("sla_acknowledge")
    assert route.lifecycle(request_id) == [("escalated", "sla_acknowledge")]
    leg = await route.db["legs"].find_one({"_id": job["leg_id"]})
    assert leg is not None
    assert (leg["status"], leg["breached"]) == ("escalated", ["acknowledge"])
    assert (await route.request(request_id))["status"] == "escalated"

    # The team acknowledges late; the resolve deadline still counts, once.
    await restarted.status(request_id, "medical", "acknowledged")
    assert await timers.scan_deadlines(restarted.ctx, now=dispatched + timedelta(hours=3)) == 1
    assert await timers.scan_deadlines(restarted.ctx, now=dispatched + timedelta(hours=4)) == 0
    assert [r for s, r in restarted.lifecycle(request_id)] == [None, "sla_resolve"]
    assert len(restarted.jobs("command", request_id)) == 1
    assert await route.timers_of(job["leg_id"]) == []


async def test_reopened_request_goes_to_the_command_centre(route: Harness) -> None:
    request_id = await route.verified(category="health_code", description="健康码一直是红码")
    await route.status(request_id, "medical", "resolved")
    assert route.lifecycle(request_id) == [("resolved", None)]

    # Route's own lifecycle events come back on the topic it reads: ignored.
    for own in list(route.bus.on(Topic.LIFECYCLE)):
        await handlers.handle_lifecycle(route.record(Topic.LIFECYCLE, own), ctx=route.ctx)
    reopened = {
        "event_id": "survey-1",
        "request_id": request_id,
        "status": "reopened",
        "at": datetime.now(UTC).isoformat(),
        "actor": "citizen",
        "reason": "not_satisfied",
        "language": "zh",
    }
    for _ in range(2):  # a redelivery changes nothing
        await handlers.handle_lifecycle(route.record(Topic.LIFECYCLE, reopened), ctx=route.ctx)
    [command] = route.jobs("command", request_id)
    assert command["rule_id"] == "reopened"
    assert route.lifecycle(request_id) == [("resolved", None), ("escalated", "reopened")]
    doc = await route.request(request_id)
    assert [t["status"] for t in doc["timeline"]] == [
        "dispatched",
        "resolved",
        "reopened",
        "dispatched",
        "escalated",
    ]
    assert doc["status"] == "escalated"

    await route.status(request_id, "command", "resolved", leg_id=command["leg_id"])
    assert route.lifecycle(request_id)[-1] == ("resolved", None)
    closed = {**reopened, "event_id": "survey-2", "status": "closed", "reason": None}
    await handlers.handle_lifecycle(route.record(Topic.LIFECYCLE, closed), ctx=route.ctx)
    assert (await route.request(request_id))["status"] == "closed"

    with pytest.raises(PermanentError):
        await handlers.handle_lifecycle(
            route.record(Topic.LIFECYCLE, {**reopened, "request_id": "r-unknown"}), ctx=route.ctx
        )


async def test_route_stamps_dispatches_and_deadlines_by_its_clock(route: Harness) -> None:
    at = datetime(2026, 1, 9, 6, 5, tzinfo=UTC)
    fixed = Harness(replace(route.ctx, clock=lambda: at), route.bus, route.db, route.offsets)
    request_id = await fixed.verified()
    [community] = fixed.jobs("community", request_id)
    assert datetime.fromisoformat(community["dispatched_at"]) == at
    assert datetime.fromisoformat(community["acknowledge_by"]) == at + timedelta(hours=1)
    leg = await fixed.db["legs"].find_one({"_id": community["leg_id"]})
    assert leg is not None
    assert leg["dispatched_at"] == at
