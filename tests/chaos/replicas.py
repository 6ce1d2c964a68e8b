"""`--parts replicas`: two processes of every stage, one of each killed under load.

A service set of its own (topics, groups, database) runs twice: processes *a* and *b* of
intake, verify, route and notify share their consumer groups and the database. Requests go
to both intakes in turn (a client that cannot reach one retries on the other with the same
Idempotency-Key, as behind a load balancer). While they arrive, b's verify, route, notify
and intake are SIGKILLed one after the other and started again a few seconds later, so
partitions move both ways. Service levels are short (acknowledge within 15 s, resolve within
40 s) and no department answers, so every leg misses both deadlines while both route
processes scan the timers, across the kill.

Counted from outside (the topics and the SMS gateway): every accepted request has its
outcome and, when verified, its dispatch (lost = 0); every leg is on its dispatch topic once
and every SMS at the gateway once (duplicate effects = 0); and every missed deadline of
every leg has exactly one ``escalated`` record on help.requests.lifecycle and, for a leg
outside the command centre, exactly one oversight job (no double escalation).
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections import Counter
from typing import Any

import httpx

from services.notify.domain import notification_id
from shared.kafka import effect_id, ensure_topics
from shared.settings import ServiceSettings
from tests.chaos.context import ChaosContext, Row, gateway_snapshot
from tests.chaos.observe import Seen, TopicWatch
from tests.support.services import SERVICES, ServiceSet, service_levels_file

FULL_SIZE = 400
SEND_SECONDS = 40.0
ACKNOWLEDGE_SECONDS = 15
RESOLVE_SECONDS = 40
KINDS = ("acknowledge", "resolve")
# (category, description): one or two departments, the command centre for a suggestion.
NEEDS = (
    ("medical", "降压药快吃完了"),
    ("food_supply", "家里断粮了，需要送米面油"),
    ("food_supply", "家里没有吃的，老人发烧了"),
    ("transport", "需要办理通行证去医院复查"),
    ("education", "孩子网课没有设备"),
    ("suggestion", "建议社区公布配送电话"),
)
DISTRICTS = ("jinshui", "erqi", "zhongyuan", "guancheng", "huiji")


def body(i: int) -> dict[str, Any]:
    category, need = NEEDS[i % len(NEEDS)]
    return {
        "category": category,
        "description": f"第{i}户：{need}",
        "contact": {"name": "居民", "phone": f"136{i:08d}"},
        "location": {"district": DISTRICTS[i % len(DISTRICTS)], "address": f"{i % 300 + 1}号院"},
        "language": "zh",
    }


async def run(ctx: ChaosContext) -> list[Row]:
    total = ctx.count(FULL_SIZE, minimum=60)
    log_dir = ctx.services.log_dir / "replicas"
    log_dir.mkdir(parents=True, exist_ok=True)
    levels = service_levels_file(
        log_dir / "service_levels.toml",
        acknowledge_minutes=ACKNOWLEDGE_SECONDS / 60,
        resolve_seconds=RESOLVE_SECONDS,
    )
    env = {
        **ctx.services.extra_env,
        "ROUTE_SERVICE_LEVELS_FILE": str(levels),
        "ROUTE_SLA_SCAN_SECONDS": "1",
        "ROUTE_SLA_CLAIM_LEASE_SECONDS": "10",
    }
    a = ServiceSet(ctx.kafka_bootstrap, ctx.mongodb_uri, log_dir, extra_env=env)
    b = ServiceSet(
        ctx.kafka_bootstrap,
        ctx.mongodb_uri,
        log_dir / "b",
        prefix=a.prefix,
        database=a.database,
        extra_env={**env, "INSTANCE_ID": "b"},
    )
    await ensure_topics(
        ServiceSettings(
            KAFKA_BOOTSTRAP=ctx.kafka_bootstrap, MONGODB_URI=ctx.mongodb_uri, TOPIC_PREFIX=a.prefix
        )
    )
    ctx.say(f"replicas: two processes of every stage (prefix {a.prefix}), {total} requests")
    watch = TopicWatch(ctx.kafka_bootstrap, a.prefix)
    started = time.monotonic()
    try:
        await asyncio.to_thread(_start, a)
        await asyncio.to_thread(_start, b)
        await watch.start()
        sent = Sending(total, (a, b))
        kills = asyncio.create_task(_kill_each(ctx, b, sent))
        await sent.run()
        kill_rows = await kills
        ctx.say(f"replicas: {len(sent.accepted)} accepted; waiting for every escalation")
        expected = await _settle(ctx, watch.seen, sent, stall=RESOLVE_SECONDS + 60)
        await asyncio.sleep(5)  # both route processes scan on: a double would show by now
        while not await watch.caught_up():
            await asyncio.sleep(0.5)
        shares = {s: (_received(a, s), _received(b, s)) for s in SERVICES if s != "intake"}
        snapshot = await gateway_snapshot(ctx.gateway_url)
    finally:
        await watch.stop()
        await asyncio.to_thread(b.stop)
        await asyncio.to_thread(a.stop)
    return _rows(
        watch.seen, sent, expected, snapshot, kill_rows, shares, time.monotonic() - started
    )


def _start(services: ServiceSet, *names: str) -> None:
    """Start processes; on a loaded machine, wait longer than the usual minute for them."""
    try:
        services.start(*names)
    except TimeoutError:
        for name in names or SERVICES:
            services.wait_ready(name, timeout=300)


class Sending:
    """The load: paced requests alternating between the two intakes."""

    def __init__(self, total: int, sets: tuple[ServiceSet, ServiceSet]) -> None:
        self.total = total
        self.sets = sets
        self.accepted: dict[int, str] = {}  # index -> request id
        self.by_intake: Counter[str] = Counter()
        self.failed = 0
        self.done = 0

    async def run(self) -> None:
        interval = SEND_SECONDS / self.total
        began = time.monotonic()
        async with httpx.AsyncClient(timeout=10) as http:
            tasks = []
            for i in range(self.total):
                await asyncio.sleep(max(0.0, began + i * interval - time.monotonic()))
                tasks.append(asyncio.create_task(self.one(http, i)))
            await asyncio.gather(*tasks)

    async def one(self, http: httpx.AsyncClient, i: int) -> None:
        key = uuid.uuid4().hex
        headers = {"Idempotency-Key": key, "X-Forwarded-For": f"10.1.{i >> 8 & 255}.{i & 255}"}
        for attempt in range(20):
            which = (i + attempt) % 2  # the other intake on a retry
            try:
                response = await http.post(
                    f"{self.sets[which].url('intake')}/v1/requests", json=body(i), headers=headers
                )
            except httpx.HTTPError:
                await asyncio.sleep(0.5)
                continue
            if response.status_code == 202:
                self.accepted[i] = str(response.json()["request_id"])
                self.by_intake["ab"[which]] += 1
                break
            await asyncio.sleep(0.5)
        else:
            self.failed += 1
        self.done += 1


async def _kill_each(ctx: ChaosContext, b: ServiceSet, sent: Sending) -> list[str]:
    """SIGKILL b's verify, route, notify and intake in turn while requests arrive; start each
    again 6 s later."""
    done: list[str] = []
    for n, service in enumerate(("verify", "route", "notify", "intake")):
        while sent.done < sent.total * (0.2 + 0.15 * n):
            await asyncio.sleep(0.2)
        ctx.say(f"replicas: SIGKILL {service} b")
        await asyncio.to_thread(b.kill, service)
        await asyncio.sleep(6)
        await asyncio.to_thread(_start, b, service)
        done.append(service)
    return done


async def _settle(ctx: ChaosContext, seen: Seen, sent: Sending, *, stall: float) -> set[str]:
    """Wait until every accepted request has its outcome and every original leg both its
    escalations, while that makes progress (given up after ``stall`` seconds without);
    the escalations expected."""
    expected: set[str] = set()
    progress, moved = -1, time.monotonic()
    while time.monotonic() - moved < stall and not ctx.drain_stop.is_set():
        ids = set(sent.accepted.values())
        originals = {
            leg for rid in ids for leg in seen.legs_of.get(rid, ()) if leg not in seen.oversight
        }
        expected = {effect_id("escalated", leg, kind) for leg in originals for kind in KINDS}
        decided = all(seen.outcomes.get(rid) for rid in ids)
        dispatched = all(
            seen.legs_of.get(rid) for rid in ids if "verified" in seen.outcomes.get(rid, ())
        )
        if decided and dispatched and expected <= set(seen.escalations):
            break
        now = sum(seen.records.values())
        if now != progress:
            progress, moved = now, time.monotonic()
        await asyncio.sleep(2)
    return expected


def _received(services: ServiceSet, stage: str) -> int:
    """What one process of a stage consumed since it (last) started, from its metrics."""
    try:
        text = httpx.get(f"{services.url(stage)}/metrics", timeout=5).text
    except httpx.HTTPError:
        return -1
    pattern = rf'^cityhelp_messages_received_total\{{service="{stage}",[^}}]*\}} ([0-9.e+]+)$'
    return int(sum(float(m.group(1)) for m in re.finditer(pattern, text, re.M)))


def _rows(
    seen: Seen,
    sent: Sending,
    expected: set[str],
    snapshot: dict[str, Any],
    kills: list[str],
    shares: dict[str, tuple[int, int]],
    seconds: float,
) -> list[Row]:
    ids = set(sent.accepted.values())
    no_outcome = {rid for rid in ids if not seen.outcomes.get(rid)}
    undispatched = {
        rid
        for rid in ids - no_outcome
        if "verified" in seen.outcomes[rid] and not seen.legs_of.get(rid)
    }
    lost = len(no_outcome | undispatched) + sent.failed
    legs = {leg for rid in ids for leg in seen.legs_of.get(rid, ())}
    extra_jobs = sum(seen.legs[leg] - 1 for leg in legs)
    originals = legs - seen.oversight
    outside_command = {leg for leg in originals if seen.leg_slot.get(leg) != "command"}
    oversight = legs & seen.oversight
    escalated = Counter({e: n for e, n in seen.escalations.items() if e in expected})
    extra_escalations = sum(n - 1 for n in escalated.values())
    missing_escalations = len(expected - set(escalated))
    receipts = {notification_id(rid, "received", "sms", "") for rid in ids}
    phones = {f"+86136{i:08d}" for i in sent.accepted}
    mine = [m for m in snapshot["messages"] if m.get("to") in phones]
    keys = Counter(m["idempotency_key"] for m in mine)
    extra_sms = sum(n - 1 for n in keys.values())
    missing_receipts = len(receipts - set(keys))
    dropped = sum(n for k, n in snapshot["duplicate_keys"].items() if k in keys)
    share = ", ".join(f"{s} {x}/{y}" for s, (x, y) in shares.items())
    return [
        Row(
            "replicas: requests (2 intakes)",
            sent.total,
            len(ids) - len(no_outcome | undispatched),
            lost,
            f"accepted {len(ids)} (a {sent.by_intake['a']}, b {sent.by_intake['b']}); "
            f"bad = lost: no outcome {len(no_outcome)}, verified but not dispatched "
            f"{len(undispatched)}, never accepted {sent.failed}",
            seconds,
            fields={"accepted": len(ids), "lost": lost},
        ),
        Row(
            "replicas: dispatch jobs",
            len(legs),
            len(legs) - sum(1 for leg in legs if seen.legs[leg] > 1),
            extra_jobs,
            f"legs once on their topic; bad = copies beyond the first "
            f"({len(originals)} legs, {len(oversight)} oversight jobs)",
            fields={"duplicate_effects": extra_jobs},
        ),
        Row(
            "replicas: escalations",
            len(expected),
            sum(1 for n in escalated.values() if n == 1),
            missing_escalations
            + extra_escalations
            + abs(len(oversight) - 2 * len(outside_command)),
            f"every missed deadline escalated exactly once by 2 route processes; bad = missing "
            f"{missing_escalations} + repeated {extra_escalations} + oversight jobs off "
            f"{len(oversight) - 2 * len(outside_command)}",
            fields={
                "escalations": len(escalated),
                "double_escalations": extra_escalations,
                "duplicate_effects": extra_escalations,
            },
        ),
        Row(
            "replicas: SMS (2 notifies)",
            len(receipts),
            len(receipts) - missing_receipts,
            missing_receipts + extra_sms,
            f"{len(mine)} SMS at the gateway, each key once; bad = receipts missing "
            f"{missing_receipts} + copies {extra_sms}; resends dropped by key: {dropped}",
            fields={"duplicate_effects": extra_sms, "lost": missing_receipts},
        ),
        Row(
            "replicas: one of each killed",
            4,
            len(kills),
            4 - len(kills),
            f"SIGKILL and restart of b's {', '.join(kills)}; records consumed a/b since "
            f"start: {share}",
        ),
    ]
