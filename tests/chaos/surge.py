"""A surge of help requests while every service is killed in turn, the broker restarts and the
database goes away for a while; then an account of every accepted request, from the topics,
the database and the SMS gateway.

Definitions used in the table:

- accepted: answered 202 by intake (after retries with the same Idempotency-Key);
- lost: accepted, but missing from the ``requests`` collection, or without an outcome on
  ``help.requests.verified|review|rejected``, or verified without any dispatch record, or
  stored in a state that does not match its outcome;
- duplicate effects: dispatch records beyond the first per leg id (whatever their ce_id: a
  department sees a second job) plus SMS stored by the gateway beyond the first per
  notification id. Resends the gateway dropped by idempotency key are shown apart
  (``sms_resends_dropped``): the citizen did not get them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
from pymongo import AsyncMongoClient

from services.notify.domain import notification_id
from shared import requests_store
from tests.chaos.context import ChaosContext, Row, gateway_snapshot
from tests.chaos.observe import Seen, TopicWatch, group_lag
from tests.chaos.outages import Fault, run_faults, schedule
from tests.chaos.traffic import PartnerRelay, Submission, Submitter, plan

FULL_SIZE = 20_000
# What the request record says once the outcome is stored (verified requests are dispatched;
# a long run may see a P1 leg escalated for a missed acknowledgement deadline).
DB_STATES = {
    "verified": {"dispatched", "escalated"},
    "needs_review": {"needs_review"},
    "rejected": {"rejected"},
    "duplicate": {"duplicate"},
}


@dataclass
class Settings:
    total: int
    concurrency: int = 48
    rate: float = 0.0  # requests per second; 0 = as fast as intake answers
    db_seconds: float = 10.0
    drain_timeout: float = 7200.0  # at most this long after the surge ...
    stall_seconds: float = 300.0  # ... and given up sooner when nothing moves for this long
    every: float = 5.0  # seconds between progress lines

    @classmethod
    def for_scale(cls, ctx: ChaosContext) -> Settings:
        total = ctx.count(FULL_SIZE, minimum=60)
        if ctx.scale >= 0.5:
            return cls(total=total, drain_timeout=ctx.drain_timeout or 7200.0)
        # Small runs (`make test`): paced so that the faults land while requests still arrive.
        return cls(
            total=total, concurrency=8, rate=total / 40.0, db_seconds=5.0, drain_timeout=600.0
        )


@dataclass
class Account:
    """The figures of one surge."""

    accepted: int = 0
    not_sent: int = 0
    drained: bool = True
    lost: set[str] = field(default_factory=set)
    # Not drained by the deadline: requests still short of their outcome or dispatch (in the
    # stages' backlog, or lost: a run that does not drain cannot tell which).
    unfinished: set[str] = field(default_factory=set)
    why_lost: Counter[str] = field(default_factory=Counter)
    wrong: Counter[str] = field(default_factory=Counter)  # "expected->actual"
    repeats_ok: int = 0
    repeats_tried: int = 0
    legs: int = 0
    dispatch_extra: int = 0
    legs_repeated: int = 0
    dispatch_extra_same_ce_id: int = 0
    notices_expected: int = 0
    notices_missing: int = 0
    notices_unannounced: int = 0
    sms_extra: int = 0
    sms_other: int = 0
    sms_resends_dropped: int = 0
    notification_failures: int = 0
    dead_letters: Counter[str] = field(default_factory=Counter)


async def run(ctx: ChaosContext) -> list[Row]:
    settings = Settings.for_scale(ctx)
    subs = plan(settings.total)
    base = [s for s in subs if s.original is None]
    repeats = [s for s in subs if s.original is not None]
    by_index = {s.index: s for s in subs}
    ctx.say(
        f"surge: {len(base)} requests + {len(repeats)} repeats, {settings.concurrency} clients"
        + (f", paced at {settings.rate:.0f}/s" if settings.rate else "")
    )

    watch = TopicWatch(ctx.kafka_bootstrap, ctx.services.prefix)
    await watch.start()
    submitter = Submitter(ctx.services.url("intake"), concurrency=settings.concurrency)
    submitter.stop = ctx.stopping
    faults = schedule(db_seconds=settings.db_seconds)
    surge_over = asyncio.Event()
    send_window = ctx.budget / 2 if ctx.budget else 0.0
    began = time.monotonic()

    def progress() -> float:
        """How far the surge is: by requests accepted, or by time under a budget."""
        done = submitter.tally.accepted / max(1, len(base))
        if send_window:
            done = max(done, (time.monotonic() - began) / (send_window * 0.8))
        return done

    if send_window:
        asyncio.get_running_loop().call_later(send_window, ctx.stopping.set)
        settings.drain_timeout = ctx.budget - send_window
        ctx.say(f"time budget {ctx.budget:.0f}s: sending stops after {send_window:.0f}s")
    fault_task = asyncio.create_task(run_faults(ctx, faults, progress, surge_over))
    reporter = asyncio.create_task(_report(ctx, submitter, watch, settings.every))
    started = time.monotonic()
    try:
        if settings.rate:
            await _paced(submitter, base, settings.rate)
        else:
            await submitter.submit_all(base)
        sent_at = time.monotonic()
        for sub in base:
            if sub.outcome == "":
                sub.outcome = "not_sent"
        ctx.say(
            f"surge sent: {submitter.tally.accepted} accepted in {sent_at - started:.0f}s "
            f"({submitter.tally.accepted / max(0.001, sent_at - started):.0f}/s)"
        )
        surge_over.set()
        repeats_task = asyncio.create_task(_send_repeats(ctx, repeats, by_index, watch))
        await fault_task
        drained = await _drain(ctx, submitter, subs, watch, repeats_task, settings)
        drained_at = time.monotonic()
        ctx.stopping.set()  # repeats whose original is still undecided are not sent now
        await repeats_task
        account = await _account(ctx, subs, watch, drained=drained)
    finally:
        surge_over.set()
        reporter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reporter
        if not fault_task.done():
            fault_task.cancel()
        await watch.stop()
    return _rows(
        ctx,
        submitter,
        account,
        faults,
        drained=drained,
        send_seconds=sent_at - started,
        drain_seconds=drained_at - sent_at,
        total_seconds=drained_at - started,
    )


async def _paced(submitter: Submitter, subs: list[Submission], rate: float) -> None:
    """Submit at about ``rate`` per second, several at a time."""
    step = 1.0 / rate
    tasks: list[asyncio.Task[None]] = []
    async with httpx.AsyncClient(base_url=submitter.base_url, timeout=30) as http:
        for sub in subs:
            tasks.append(asyncio.create_task(submitter.submit(http, sub)))
            await asyncio.sleep(step)
        await asyncio.gather(*tasks)


async def _send_repeats(
    ctx: ChaosContext,
    repeats: list[Submission],
    by_index: dict[int, Submission],
    watch: TopicWatch,
    timeout: float = 1800.0,
) -> None:
    """The same citizen's request again, once the first was decided, relayed by the hotline on
    the partner topic: a second channel."""
    relay = PartnerRelay(ctx.kafka_bootstrap, ctx.services.prefix)
    pending = list(repeats)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline and not ctx.stopping.is_set():
        ready = [
            s
            for s in pending
            if by_index[s.original or 0].request_id in watch.seen.outcomes
            or by_index[s.original or 0].outcome not in ("", "accepted")
        ]
        if ready:
            pending = [s for s in pending if s not in ready]
            await relay.relay_all(ready)
        await asyncio.sleep(1.0)
    for sub in pending:
        sub.outcome = "not_sent" if ctx.stopping.is_set() else "original_never_decided"


def kind_of(kinds: set[str]) -> str:
    """One outcome per request; with several (inconsistent, reported), the first by name."""
    return min(kinds) if kinds else ""


def _expected_notices(request_id: str, kind: str, seen: Seen) -> list[str]:
    ids = [notification_id(request_id, "received", "sms")]
    ids.append(notification_id(request_id, kind, "sms"))
    if kind == "verified":
        ids += [
            notification_id(request_id, "dispatched", "sms", leg)
            for leg in seen.legs_of[request_id]
        ]
    return ids


def _time_to_go(lags: list[tuple[float, int]], now: float, total_lag: int) -> str:
    """The groups' lag over the last minute, extrapolated: when it will reach zero."""
    if total_lag < 0:
        return ""
    lags.append((now, total_lag))
    while len(lags) > 2 and now - lags[1][0] > 60:
        lags.pop(0)
    (then, lag_then), shrink = lags[0], 0.0
    if now - then > 1:
        shrink = (lag_then - total_lag) / (now - then)
    if shrink <= 0:
        return ""
    return f" | about {total_lag / shrink:.0f}s to go at the last minute's rate"


def _progress(seen: Seen) -> dict[str, int]:
    return {"outcomes": len(seen.outcomes), "legs": len(seen.legs), "sms": len(seen.sent)}


def _missing(subs: list[Submission], seen: Seen) -> Counter[str]:
    """What the topics still lack for the accepted requests."""
    gaps: Counter[str] = Counter()
    for sub in subs:
        if sub.outcome != "accepted":
            if sub.outcome == "":
                gaps["not_yet_sent"] += 1
            continue
        kinds = seen.outcomes.get(sub.request_id)
        if not kinds:
            gaps["no_outcome"] += 1
            continue
        kind = min(kinds)
        if kind == "verified" and not seen.legs_of.get(sub.request_id):
            gaps["no_dispatch"] += 1
            continue
        for nid in _expected_notices(sub.request_id, kind, seen):
            if not seen.sent.get(nid):
                gaps["no_sms_sent"] += 1
    return gaps


async def _drain(
    ctx: ChaosContext,
    submitter: Submitter,
    subs: list[Submission],
    watch: TopicWatch,
    repeats_task: asyncio.Task[None],
    settings: Settings,
) -> bool:
    """Wait until every accepted request has its outcome, dispatches and messages on the
    topics and every consumer group has committed everything."""
    deadline = time.monotonic() + settings.drain_timeout
    ctx.say(
        f"draining (as long as the stages make progress, at most {settings.drain_timeout:.0f}s;"
        f" given up after {settings.stall_seconds:.0f}s without progress)"
    )
    stop_drain = ctx.drain_stop
    before = (time.monotonic(), _progress(watch.seen))
    last_moved = time.monotonic()
    lags: list[tuple[float, int]] = []  # (time, records the groups have yet to commit)
    while True:
        now, counts = time.monotonic(), _progress(watch.seen)
        span = max(0.001, now - before[0])
        ctx.say(
            "rates: " + ", ".join(f"{k}={(counts[k] - before[1][k]) / span:.1f}/s" for k in counts)
        )
        if counts != before[1]:
            last_moved = now
        gaps = _missing(subs, watch.seen)
        before = (now, counts)
        lag: dict[str, int] | None = None
        with contextlib.suppress(Exception):
            lag = await asyncio.wait_for(
                group_lag(ctx.kafka_bootstrap, ctx.services.prefix, watch), 20
            )
        total_lag = sum(lag.values()) if lag is not None else -1
        ctx.say(
            "drain: "
            + (", ".join(f"{k}={v}" for k, v in sorted(gaps.items())) or "topics complete")
            + " | lag "
            + (
                ", ".join(f"{g.removeprefix('cityhelp-')}={n}" for g, n in sorted(lag.items()))
                if lag
                else "?"
            )
            + _time_to_go(lags, now, total_lag)
        )
        if not gaps and total_lag == 0 and repeats_task.done() and await watch.caught_up():
            ctx.say("drained")
            return True
        if time.monotonic() > deadline or stop_drain.is_set():
            ctx.say("drain deadline passed (or stop requested); counting what is there")
            return False
        if time.monotonic() - last_moved > settings.stall_seconds:
            ctx.say(f"nothing moved for {settings.stall_seconds:.0f}s; counting what is there")
            return False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop_drain.wait(), settings.every)


async def _account(
    ctx: ChaosContext, subs: list[Submission], watch: TopicWatch, *, drained: bool
) -> Account:
    seen = watch.seen
    account = Account(drained=drained)
    account.not_sent = sum(1 for s in subs if s.outcome == "not_sent")
    short = account.lost if drained else account.unfinished
    accepted = [s for s in subs if s.outcome == "accepted"]
    account.accepted = len(accepted)

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(ctx.mongodb_uri, tz_aware=True)
    try:
        merged = await requests_store.scan(client[ctx.services.database], ("status",))
        states = {str(d["_id"]): str(d.get("status")) for d in merged}
    finally:
        await client.close()

    expected_notices: set[str] = set()
    for sub in accepted:
        rid = sub.request_id
        kinds = seen.outcomes.get(rid, set())
        if rid not in states:
            account.why_lost["not_in_database"] += 1
            short.add(rid)
        expected_notices.add(notification_id(rid, "received", "sms"))
        dropped = {
            d for d in seen.dead_lettered.get(rid, set()) if d.startswith(("verify", "route"))
        }
        if not kinds or (kind_of(kinds) == "verified" and not seen.legs_of.get(rid)):
            # Dead-lettered on the way: lost whether or not the stages drained (nothing
            # carries it further unless someone replays the dead letter).
            for d in dropped:
                account.why_lost[f"dead_lettered:{d}"] += 1
                account.lost.add(rid)
        if not kinds:
            account.why_lost["no_outcome_on_topics"] += 1
            if rid not in account.lost:
                short.add(rid)
            continue
        if len(kinds) > 1:
            account.wrong["inconsistent:" + "+".join(sorted(kinds))] += 1
        kind = kind_of(kinds)
        if kind == "verified" and not seen.legs_of.get(rid):
            account.why_lost["verified_never_dispatched"] += 1
            if rid not in account.lost:
                short.add(rid)
        if rid in states and states[rid] not in DB_STATES[kind]:
            account.why_lost[f"database_state:{kind}->{states[rid]}"] += 1
            short.add(rid)
        if sub.original is not None:
            account.repeats_tried += 1
            account.repeats_ok += kind == "duplicate"
            if kind != "duplicate":
                account.wrong[f"repeat->{kind}"] += 1
        elif kind != sub.expected:
            account.wrong[f"{sub.expected}->{kind}"] += 1
        expected_notices.update(_expected_notices(rid, kind, seen))

    ours = {s.request_id for s in accepted}
    for leg, n in seen.legs.items():
        account.legs += 1
        account.dispatch_extra += n - 1
        account.legs_repeated += n > 1
        if n > 1 and len(seen.leg_ce_ids[leg]) == 1:
            account.dispatch_extra_same_ce_id += n - 1

    snapshot: dict[str, Any] = {"messages": [], "duplicates": 0}
    if ctx.gateway_url:
        snapshot = await gateway_snapshot(ctx.gateway_url)
    stored = Counter(str(m.get("idempotency_key")) for m in snapshot["messages"])
    account.sms_resends_dropped = int(snapshot.get("duplicates", 0))
    account.sms_extra = sum(n - 1 for n in stored.values() if n > 1)
    account.notices_expected = len(expected_notices)
    account.notices_missing = sum(1 for nid in expected_notices if nid not in stored)
    account.notices_unannounced = sum(
        1 for nid in expected_notices if nid in stored and not seen.sent.get(nid)
    )
    account.sms_other = sum(1 for nid in stored if nid not in expected_notices)
    account.notification_failures = sum(seen.failed.values())
    account.dead_letters = seen.dead_letters
    unknown = [r for r in seen.submitted if r not in ours]
    if unknown:
        account.wrong["submitted_but_never_answered_202"] += len(unknown)
    return account


def _rows(
    ctx: ChaosContext,
    submitter: Submitter,
    a: Account,
    faults: list[Fault],
    *,
    drained: bool,
    send_seconds: float,
    drain_seconds: float,
    total_seconds: float,
) -> list[Row]:
    tally = submitter.tally
    tried = a.accepted + tally.gave_up
    not_sent = a.not_sent
    retries = sum(tally.statuses.values()) - tried
    statuses = ", ".join(f"{k}:{v}" for k, v in sorted(tally.statuses.items()))
    accept_window = max(0.001, tally.last_accept - tally.first_accept)
    rate = a.accepted / max(0.001, send_seconds)
    dead = sum(a.dead_letters.values())
    lost = len(a.lost)
    unfinished = len(a.unfinished)
    duplicate_effects = a.dispatch_extra + a.sms_extra
    wrong = sum(a.wrong.values())
    rows = [
        Row(
            "surge: accepted (202) at intake",
            tried,
            a.accepted,
            tally.gave_up,
            f"{retries} retries with the same key; answers {statuses}"
            + (f"; {not_sent} not sent (time budget)" if not_sent else ""),
            send_seconds,
            {
                "accepted": a.accepted,
                "http_5xx": tally.http_5xx,
                "connection_errors": tally.statuses["connection_error"] + tally.statuses["timeout"],
                "not_accepted": tally.gave_up,
                "not_sent": not_sent,
            },
        ),
        Row(
            "surge: stored, decided, dispatched",
            a.accepted,
            a.accepted - lost - unfinished,
            lost + unfinished,
            ("lost" if drained else f"NOT DRAINED by the deadline, {unfinished} unfinished")
            + ": "
            + (", ".join(f"{k}:{v}" for k, v in sorted(a.why_lost.items())) or "none"),
            drain_seconds,
            {"lost": lost, "unfinished": unfinished, "drained": int(drained)},
        ),
        Row(
            "surge: outcome as the rules say",
            a.accepted,
            a.accepted - wrong,
            wrong,
            "expected->actual: "
            + (", ".join(f"{k}:{v}" for k, v in sorted(a.wrong.items())) or "all as expected"),
            fields={"wrong_outcome": wrong},
        ),
        Row(
            "surge: repeats collapse into the original",
            a.repeats_tried,
            a.repeats_ok,
            a.repeats_tried - a.repeats_ok,
            "same phone, category and text again → duplicate",
        ),
        Row(
            "surge: one dispatch per leg",
            a.legs,
            a.legs - a.legs_repeated,
            a.dispatch_extra,
            f"extra dispatch records (same ce_id: {a.dispatch_extra_same_ce_id})",
            fields={"duplicate_effects": duplicate_effects, "dispatch_copies": a.dispatch_extra},
        ),
        Row(
            "surge: each citizen message once",
            a.notices_expected,
            a.notices_expected - a.notices_missing - a.notices_unannounced,
            a.notices_missing + a.notices_unannounced + a.sms_extra,
            ("" if drained else "NOT DRAINED: ")
            + f"missing {a.notices_missing}, not on help.notifications {a.notices_unannounced}, "
            f"stored twice {a.sms_extra}; resends dropped by the gateway "
            f"{a.sms_resends_dropped}; other messages {a.sms_other}; failed attempts "
            f"{a.notification_failures}",
            fields={"sms_missing": a.notices_missing, "sms_resends_dropped": a.sms_resends_dropped},
        ),
        Row(
            "surge: no dead letters",
            a.accepted,
            a.accepted if not dead else a.accepted - dead,
            dead,
            ", ".join(f"{k}:{v}" for k, v in sorted(a.dead_letters.items())) or "none",
            fields={"dead_letters": dead},
        ),
        Row(
            "throughput",
            a.accepted,
            a.accepted,
            0,
            f"{rate:.0f} accepted/s over the surge ({a.accepted / accept_window:.0f}/s between "
            f"first and last 202); "
            + ("drained" if drained else "NOT drained")
            + f" {drain_seconds:.0f}s after the last; "
            f"{a.accepted / max(0.001, total_seconds):.1f} requests/s end to end",
            total_seconds,
            {"accepted_per_s": round(rate), "drain_s": round(drain_seconds)},
        ),
    ]
    rows += [f.row() for f in faults]
    return rows


async def _report(ctx: ChaosContext, submitter: Submitter, watch: TopicWatch, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        tally, seen = submitter.tally, watch.seen
        outcomes = Counter(min(k) for k in seen.outcomes.values())
        ctx.say(
            f"sent: accepted={tally.accepted} 5xx={tally.http_5xx} "
            f"conn_err={tally.statuses['connection_error'] + tally.statuses['timeout']} "
            f"429={tally.statuses['429']} | topics: submitted={len(seen.submitted)} "
            f"verified={outcomes['verified']} review={outcomes['needs_review']} "
            f"rejected={outcomes['rejected']} duplicate={outcomes['duplicate']} "
            f"legs={len(seen.legs)} sms_sent={len(seen.sent)} dlq={sum(seen.dead_letters.values())}"
        )
