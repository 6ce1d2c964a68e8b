"""The pipeline's steps: a fixed offered load through intake's HTTP API (or as fast as wrk can
send), and P1 requests submitted behind a backlog of P3 ones.

Each step runs on a service set of its own (a topic prefix, consumer groups and database of its
own, the four services started fresh), so one step's undrained backlog never slows the next and
each step's counters start from zero. A step's drain wait (for every request's dispatch or
decision, and its first notification) is bounded; whatever is still undecided then is reported
as lost, never waited for.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from aiokafka import AIOKafkaProducer

from shared.kafka import ensure_topics
from shared.settings import ServiceSettings
from shared.topics import Topic
from tests.bench import bodies
from tests.bench.load import LoadResult, run_wrk
from tests.bench.procs import (
    ProcFigures,
    document_counts,
    read_proc,
    service_figures,
    stack_pids,
    write_commands,
)
from tests.bench.stats import WRITE_COMMANDS, delta
from tests.bench.watch import Outcomes, Track, Watch, outcomes, per_second
from tests.support.services import ServiceSet

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Bench:
    """The run: where the stack is, the clock, and what every process used."""

    bootstrap: str
    uri: str
    run_dir: Path
    started: float = field(default_factory=time.monotonic)
    # per service name, the figures of each service set's process when it was stopped
    service_procs: dict[str, list[ProcFigures]] = field(default_factory=dict)
    loads: list[LoadResult] = field(default_factory=list)
    live: list[ServiceSet] = field(default_factory=list)  # started, not stopped yet

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def say(self, message: str) -> None:
        """A progress line: counts and rates only, never a body or a phone number."""
        print(f"[bench] {self.elapsed:6.0f}s  {message}", flush=True)

    async def start_services(self, attempts: int = 3) -> ServiceSet:
        """A fresh service set (its own prefix, groups, database and ports), ready."""
        for attempt in range(1, attempts + 1):
            services = ServiceSet(
                self.bootstrap,
                self.uri,
                self.run_dir / "logs" / "services",
                prefix=f"b{uuid.uuid4().hex[:8]}.",
                extra_env={"LOG_LEVEL": "WARNING", "INTAKE_TRUSTED_PROXIES": "127.0.0.1"},
            )
            settings = ServiceSettings(KAFKA_BOOTSTRAP=self.bootstrap, TOPIC_PREFIX=services.prefix)
            await ensure_topics(settings)
            self.live.append(services)
            try:
                await asyncio.to_thread(services.start)
                return services
            except (RuntimeError, TimeoutError) as exc:
                await self.stop_services(services)
                if attempt == attempts:
                    raise
                self.say(f"  services did not start ({exc}); trying other ports")
        raise AssertionError("unreachable")

    async def stop_services(self, services: ServiceSet) -> None:
        if services in self.live:
            self.live.remove(services)
        for name, figures in service_figures(services).items():
            self.service_procs.setdefault(name, []).append(figures)
        await asyncio.to_thread(services.stop)

    def stop_all(self) -> None:
        """Stop every service set still running (an error or Ctrl-C on the way)."""
        for services in list(self.live):
            services.stop()
        self.live.clear()

    def stack_cpu(self) -> dict[str, float]:
        figures = {n: read_proc(pid) for n, pid in stack_pids(self.run_dir).items()}
        return {n: f.cpu_s for n, f in figures.items() if f is not None}


@dataclass
class StepResult:
    label: str
    offered_per_s: float | None
    seconds: float
    load: LoadResult
    outcomes: Outcomes
    drain_s: float
    drained: bool
    write_commands: dict[str, float]
    inserted_documents: dict[str, int]
    accepted_series: list[int]
    dispatched_series: list[int]
    dispatch_ms: list[float]  # submit→dispatch of every dispatched request (for the plot)
    cpu_s: dict[str, float]  # CPU seconds during the step: services, kafka, ferretdb, wrk
    per_topic: dict[str, int]  # records seen per topic (contract name)

    @property
    def decided(self) -> int:
        o = self.outcomes
        return o.dispatched + o.needs_review + o.rejected

    @property
    def writes(self) -> float:
        """Database writes: each inserted document, and each other write command."""
        others = sum(
            n
            for k, n in self.write_commands.items()
            if k.split(":")[0] in WRITE_COMMANDS - {"insert"}
        )
        return sum(self.inserted_documents.values()) + others


def pending(tracks: dict[str, Track]) -> tuple[int, int, int]:
    """(submitted requests, of which neither dispatched nor decided otherwise, of which without
    a notification yet)."""
    total = undecided = unnotified = 0
    for t in tracks.values():
        if t.submit_ms is None:
            continue
        total += 1
        if t.dispatch_ms is None and t.outcome not in ("needs_review", "rejected", "duplicate"):
            undecided += 1
        if t.notify_ms is None:
            unnotified += 1
    return total, undecided, unnotified


async def drain(
    bench: Bench,
    watch: Watch,
    bound: float,
    *,
    ids: set[str] | None = None,
    notifications: bool = True,
) -> tuple[float, bool]:
    """Wait until every request seen (or every one of ``ids``) is dispatched or decided, and
    (with ``notifications``) has had its first notification, at most ``bound`` seconds;
    (seconds waited, whether every request was dispatched or decided)."""
    started = time.monotonic()
    last_report = started
    while True:
        tracks = watch.seen.tracks
        if ids is not None:
            tracks = {k: tracks.get(k, Track()) for k in ids}
            _, undecided, unnotified = pending(tracks)
            unseen = sum(1 for t in tracks.values() if t.submit_ms is None)
            total, undecided, unnotified = len(ids), undecided + unseen, unnotified + unseen
        else:
            total, undecided, unnotified = pending(tracks)
        waiting = undecided + (unnotified if notifications else 0)
        waited = time.monotonic() - started
        if waiting == 0 and await watch.caught_up():
            return waited, True
        counts = f"{total - undecided}/{total} decided"
        if notifications:
            counts += f", {total - unnotified}/{total} notified"
        if waited >= bound:
            bench.say(f"  drain: stopped waiting after {waited:.0f}s, {counts}")
            return waited, undecided == 0
        if time.monotonic() - last_report >= 10:
            bench.say(f"  drain: {counts}, {waited:.0f}s of {bound:.0f}s")
            last_report = time.monotonic()
        await asyncio.sleep(1)


async def load_step(
    bench: Bench, label: str, rate: float | None, seconds: float, drain_bound: float, base: int
) -> StepResult:
    """One step: fresh services, wrk at ``rate`` for ``seconds``, a bounded drain, figures."""
    services = await bench.start_services()
    watch = Watch(bench.bootstrap, services.prefix)
    await watch.start()
    try:
        writes_before = await write_commands(services)
        docs_before = await document_counts(bench.uri, services.database)
        cpu_before = bench.stack_cpu()
        cpu_before.update({n: f.cpu_s for n, f in service_figures(services).items()})
        start_ms = time.time() * 1000
        task = asyncio.create_task(
            run_wrk(services.url("intake"), rate=rate, seconds=seconds, base=base)
        )
        while not task.done():
            await asyncio.wait({task}, timeout=10)
            if not task.done():
                total, undecided, _ = pending(watch.seen.tracks)
                bench.say(f"  {label}: {total} accepted so far, {total - undecided} decided")
        load = task.result()
        bench.loads.append(load)
        if load.error:
            bench.say(f"  wrk: {load.error}")
        drain_s, drained = await drain(bench, watch, drain_bound)
        end_ms = time.time() * 1000
        found = outcomes(watch.seen.tracks, None, end_ms)
        writes = delta(await write_commands(services), writes_before)
        docs_after = await document_counts(bench.uri, services.database)
        inserted = {k: n - docs_before.get(k, 0) for k, n in docs_after.items()}
        cpu_after = bench.stack_cpu()
        cpu_after.update({n: f.cpu_s for n, f in service_figures(services).items()})
        cpu = delta(cpu_after, cpu_before)
        cpu["wrk"] = load.cpu_s
        tracks = [t for t in watch.seen.tracks.values() if t.submit_ms is not None]
        span = int(seconds + drain_s) + 2
        return StepResult(
            label=label,
            offered_per_s=rate,
            seconds=seconds,
            load=load,
            outcomes=found,
            drain_s=drain_s,
            drained=drained,
            write_commands=writes,
            inserted_documents={k: v for k, v in inserted.items() if v > 0},
            accepted_series=per_second([t.submit_ms or 0 for t in tracks], start_ms, span),
            dispatched_series=per_second(
                [t.dispatch_ms for t in tracks if t.dispatch_ms is not None], start_ms, span
            ),
            dispatch_ms=[
                t.dispatch_ms - t.submit_ms
                for t in tracks
                if t.dispatch_ms is not None and t.submit_ms is not None
            ],
            cpu_s=cpu,
            per_topic=dict(watch.seen.per_topic),
        )
    finally:
        await watch.stop()
        await bench.stop_services(services)


@dataclass
class BacklogResult:
    backlog: int
    produce_s: float
    p1_sent: int
    p1: Outcomes
    p3: Outcomes
    waited_s: float
    p1_dispatch_ms: list[float]


async def produce_all(
    bootstrap: str, records: Iterable[tuple[str, bytes, bytes, list[tuple[str, bytes]]]]
) -> int:
    """Every ``(topic, value, key, headers)`` record, as fast as the producer takes them
    (acks=all, idempotent); how many."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5
    )
    await producer.start()
    sent = 0
    try:
        pending = []
        for topic, value, key, headers in records:
            pending.append(await producer.send(topic, value, key=key, headers=headers))
            sent += 1
            if len(pending) >= 2000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent


async def produce_backlog(bootstrap: str, topic: str, n: int, base: int) -> set[str]:
    """``n`` ordinary P3 submitted records straight onto ``topic`` (acks=all, idempotent)."""
    ids = [str(uuid.uuid4()) for _ in range(n)]
    await produce_all(
        bootstrap,
        (
            (
                topic,
                bodies.submitted(rid, bodies.p3_body(base + i)).model_dump_json().encode(),
                rid.encode(),
                [],
            )
            for i, rid in enumerate(ids)
        ),
    )
    return set(ids)


async def submit_p1(url: str, n: int, spread_s: float, base: int) -> set[str]:
    """``n`` P1 requests through intake's HTTP API, spread evenly over ``spread_s`` seconds;
    the request ids of those accepted."""
    accepted: set[str] = set()

    async def one(http: httpx.AsyncClient, i: int) -> None:
        await asyncio.sleep(spread_s * i / max(1, n))
        headers = {
            "X-Client-Id": f"bench-p1-{i}",
            "X-Forwarded-For": f"10.255.{(i >> 8) & 255}.{i & 255}",
            "Idempotency-Key": uuid.uuid4().hex,
        }
        for _ in range(3):
            try:
                response = await http.post(
                    "/v1/requests", json=bodies.p1_body(base + i), headers=headers
                )
            except httpx.HTTPError:
                await asyncio.sleep(0.5)
                continue
            if response.status_code == 202:
                accepted.add(str(response.json()["request_id"]))
            return

    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        await asyncio.gather(*(one(http, i) for i in range(n)))
    return accepted


async def backlog_step(
    bench: Bench, backlog: int, p1: int, bound: float, base: int
) -> BacklogResult:
    """P1 submit→dispatch while ``backlog`` P3 requests wait on the submitted topic."""
    services = await bench.start_services()
    watch = Watch(bench.bootstrap, services.prefix)
    await watch.start()
    try:
        bench.say(f"  producing {backlog} P3 records onto the submitted topic")
        started = time.monotonic()
        p3_ids = await produce_backlog(
            bench.bootstrap, services.prefix + Topic.SUBMITTED.value, backlog, base
        )
        produce_s = time.monotonic() - started
        bench.say(f"  produced in {produce_s:.1f}s; submitting {p1} P1 requests over 10 s")
        p1_ids = await submit_p1(services.url("intake"), p1, 10.0, base + backlog)
        bench.say(f"  {len(p1_ids)} P1 accepted; waiting for their dispatch (at most {bound:.0f}s)")
        waited, _ = await drain(bench, watch, bound, ids=p1_ids, notifications=False)
        end_ms = time.time() * 1000
        tracks = watch.seen.tracks
        p1_out = outcomes(tracks, p1_ids, end_ms)
        p3_out = outcomes(tracks, p3_ids, end_ms)
        return BacklogResult(
            backlog=backlog,
            produce_s=produce_s,
            p1_sent=p1,
            p1=p1_out,
            p3=p3_out,
            waited_s=waited,
            p1_dispatch_ms=[
                t.dispatch_ms - t.submit_ms
                for k in p1_ids
                if (t := tracks.get(k)) and t.dispatch_ms is not None and t.submit_ms is not None
            ],
        )
    finally:
        await watch.stop()
        await bench.stop_services(services)
