"""The pipeline's steps: a fixed offered load through intake's HTTP API (or as fast as wrk can
send); the P1 requests behind a backlog are in tests/bench/backlog.py.

Each step runs on a service set of its own (a topic prefix, consumer groups and database of its
own, the four services started fresh), so one step's undrained backlog never slows the next and
each step's counters start from zero. A step's drain wait (for every request's dispatch or
decision, and its first notification) is bounded; whatever is still undecided then is reported
as lost, never waited for.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from shared.kafka import ensure_topics
from shared.settings import ServiceSettings
from tests.bench import profiling
from tests.bench.load import LoadResult, run_wrk
from tests.bench.procs import (
    ProcFigures,
    db_totals,
    document_counts,
    read_proc,
    service_figures,
    stack_pids,
    write_commands,
)
from tests.bench.profiling import Profile
from tests.bench.stats import DbTime, db_time, db_writes, delta
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
    load_average: tuple[float, float, float]  # the machine's, when the load ended
    db_time: list[DbTime] = field(default_factory=list)  # per decided request, biggest first
    profiles: dict[str, Profile] = field(default_factory=dict)  # by service (--profile)
    profile_errors: dict[str, str] = field(default_factory=dict)  # by service: why none

    @property
    def decided(self) -> int:
        o = self.outcomes
        return o.dispatched + o.needs_review + o.rejected

    @property
    def writes(self) -> float:
        """Database writes: each inserted document, and each other write command."""
        return db_writes(self.write_commands, self.inserted_documents)


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
    bench: Bench,
    label: str,
    rate: float | None,
    seconds: float,
    drain_bound: float,
    base: int,
    profile_dir: Path | None = None,
) -> StepResult:
    """One step: fresh services, wrk at ``rate`` for ``seconds``, a bounded drain, figures;
    with ``profile_dir``, py-spy samples every service from the load's start to the drain's
    end, one file per service there."""
    services = await bench.start_services()
    watch = Watch(bench.bootstrap, services.prefix)
    await watch.start()
    recordings: dict[str, profiling.Recording] = {}
    stopped = False
    try:
        db_before = await db_totals(services)
        docs_before = await document_counts(bench.uri, services.database)
        cpu_before = bench.stack_cpu()
        cpu_before.update({n: f.cpu_s for n, f in service_figures(services).items()})
        if profile_dir is not None:
            targets = {
                n: (profile_dir / f"{n}.collapsed.txt", p.pid) for n, p in services.procs.items()
            }
            recordings = await asyncio.to_thread(profiling.start, targets)
            for error in (r.error for r in recordings.values() if r.error):
                bench.say(f"  profile: {error}")
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
        load_average = os.getloadavg()
        bench.loads.append(load)
        if load.error:
            bench.say(f"  wrk: {load.error}")
        drain_s, drained = await drain(bench, watch, drain_bound)
        end_ms = time.time() * 1000
        profiles, profile_errors = await asyncio.to_thread(profiling.finish, recordings, 20, REPO)
        found = outcomes(watch.seen.tracks, None, end_ms)
        db_after = await db_totals(services)
        writes = delta(write_commands(db_after), write_commands(db_before))
        cpu_after = bench.stack_cpu()
        cpu_after.update({n: f.cpu_s for n, f in service_figures(services).items()})
        cpu = delta(cpu_after, cpu_before)
        # Counted once the services are stopped: a step that did not drain leaves them busy,
        # and counting every collection then outlasted the database client's timeout.
        await bench.stop_services(services)
        stopped = True
        inserted = await _inserted(bench, services.database, docs_before)
        cpu["wrk"] = load.cpu_s
        tracks = [t for t in watch.seen.tracks.values() if t.submit_ms is not None]
        span = int(seconds + drain_s) + 2
        step = StepResult(
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
            load_average=load_average,
            profiles=profiles,
            profile_errors=profile_errors,
        )
        step.db_time = db_time(db_after, db_before, step.decided)
        return step
    finally:
        await asyncio.to_thread(profiling.stop, recordings)  # after an error on the way
        await watch.stop()
        if not stopped:
            await bench.stop_services(services)


async def _inserted(bench: Bench, database: str, before: dict[str, int]) -> dict[str, int]:
    """Documents inserted per collection during a step; none known (said so) when the count
    fails: the step's other figures are kept."""
    try:
        after = await document_counts(bench.uri, database)
    except Exception as exc:  # a figure missing, not a step lost
        bench.say(f"  documents per collection not counted: {type(exc).__name__}: {exc}")
        return {}
    return {k: n - before.get(k, 0) for k, n in after.items()}
