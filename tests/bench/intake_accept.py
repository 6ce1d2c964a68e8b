"""Intake's HTTP accept rate at saturation, alone, on a running stack (Kafka and the database):

    KAFKA_BOOTSTRAP=127.0.0.1:9092 MONGODB_URI='mongodb://…' python -m tests.bench.intake_accept

starts intake by itself (its own topic prefix and database, ``INTAKE_TRUSTED_PROXIES`` set to
the loopback so that wrk's forwarded client addresses, one per request, and its distinct phones
keep both rate limits out of the way), warms it up, then runs wrk as fast as it can send
``--repeats`` times. Each run prints accepted/s (202s: acknowledged by Kafka), p50/p99 latency,
and intake's CPU seconds per accepted request (utime + stime of intake and its worker processes
from /proc, the figure least disturbed by other work on a shared machine). The last line, alone:
``intake_accept: accept_per_s=N cpu_ms_per_accept=N.NN p50_ms=N p99_ms=N workers=N`` (the
medians of the runs).

Prints figures and asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from shared.kafka import ensure_topics
from shared.settings import ServiceSettings
from tests.bench.load import LoadResult, run_wrk, wrk_available
from tests.bench.procs import read_proc, stack_pids
from tests.bench.stats import delta
from tests.support.services import REPO, ServiceSet


@dataclass(frozen=True)
class Figures:
    """One run at saturation."""

    accept_per_s: float
    cpu_ms_per_accept: float
    p50_ms: float
    p99_ms: float
    refused: int  # answers other than 202, and socket errors
    intake_cores: float  # intake's CPU seconds per second of the run
    others_ms: dict[str, float]  # CPU ms per accepted of kafka, ferretdb and wrk

    def line(self) -> str:
        others = ", ".join(f"{n} {ms:.2f}" for n, ms in self.others_ms.items())
        return (
            f"{self.accept_per_s:.0f} accepted/s, {self.cpu_ms_per_accept:.2f} ms intake CPU per"
            f" accepted ({self.intake_cores:.2f} cores), p50 {self.p50_ms:.1f} ms, p99"
            f" {self.p99_ms:.1f} ms, {self.refused} not 202; CPU ms per accepted: {others}"
        )


def figures(load: LoadResult, cpu_s: float, others_s: dict[str, float]) -> Figures:
    c = load.counts
    per_accept = 1000 / load.accepted if load.accepted else float("nan")
    duration = c.get("duration_us", 0) / 1e6 or load.seconds
    refused = sum(
        c.get(k, 0)
        for k in (
            "rate_limited",
            "client_errors",
            "server_errors",
            "other",
            "connect_errors",
            "read_errors",
            "write_errors",
            "timeouts",
        )
    )
    return Figures(
        accept_per_s=load.accept_per_s,
        cpu_ms_per_accept=cpu_s * per_accept,
        p50_ms=c.get("latency_p50_us", 0) / 1000,
        p99_ms=c.get("latency_p99_us", 0) / 1000,
        refused=refused,
        intake_cores=cpu_s / duration,
        others_ms={n: s * per_accept for n, s in {**others_s, "wrk": load.cpu_s}.items()},
    )


def stack_cpu(run_dir: Path) -> dict[str, float]:
    """CPU seconds so far of the stack's Kafka and FerretDB."""
    figures = {n: read_proc(pid) for n, pid in stack_pids(run_dir).items()}
    return {n: f.cpu_s for n, f in figures.items() if f is not None}


def summary_line(runs: list[Figures], *, workers: int) -> str:
    """The last line: the medians of the runs."""
    medians = {
        "accept_per_s": (statistics.median(r.accept_per_s for r in runs), 0),
        "cpu_ms_per_accept": (statistics.median(r.cpu_ms_per_accept for r in runs), 2),
        "p50_ms": (statistics.median(r.p50_ms for r in runs), 0),
        "p99_ms": (statistics.median(r.p99_ms for r in runs), 0),
    }
    fields = " ".join(f"{name}={value:.{places}f}" for name, (value, places) in medians.items())
    return f"intake_accept: {fields} workers={workers}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench.intake_accept", description=__doc__
    )
    parser.add_argument("--seconds", type=float, default=15.0, help="each run (15 s)")
    parser.add_argument("--repeats", type=int, default=3, help="runs after the warm-up (3)")
    parser.add_argument("--warmup", type=float, default=4.0, help="warm-up run (4 s)")
    parser.add_argument("--workers", type=int, default=1, help="INTAKE_HTTP_WORKERS (1)")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (64)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    return parser.parse_args(argv)


def say(started: float, message: str) -> None:
    print(f"[intake-accept] {time.monotonic() - started:5.0f}s  {message}", flush=True)


async def measure(args: argparse.Namespace) -> list[Figures]:
    started = time.monotonic()
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    uri = os.environ.get(
        "MONGODB_URI", "mongodb://127.0.0.1:27017/?directConnection=true&retryWrites=false"
    )
    run_dir = Path(os.environ.get("CITYHELP_RUN_DIR", str(REPO / ".run" / "bench")))
    services = ServiceSet(
        bootstrap,
        uri,
        run_dir / "logs" / "intake-accept",
        prefix=f"ia{uuid.uuid4().hex[:8]}.",
        extra_env={
            "LOG_LEVEL": "WARNING",
            "INTAKE_TRUSTED_PROXIES": "127.0.0.1",
            "INTAKE_HTTP_WORKERS": str(args.workers),
        },
    )
    await ensure_topics(ServiceSettings(KAFKA_BOOTSTRAP=bootstrap, TOPIC_PREFIX=services.prefix))
    say(started, f"starting intake ({args.workers} worker(s)) on {services.url('intake')}")
    await asyncio.to_thread(services.start, "intake")
    runs: list[Figures] = []
    try:
        pid = services.procs["intake"].pid
        base = 0
        for n in range(args.repeats + 1):
            warmup = n == 0
            seconds = args.warmup if warmup else args.seconds
            before, stack_before = read_proc(pid), stack_cpu(run_dir)
            load = await run_wrk(
                services.url("intake"),
                rate=None,
                seconds=seconds,
                base=base,
                threads=args.threads,
                connections=args.connections,
            )
            after, stack_after = read_proc(pid), stack_cpu(run_dir)
            base += 10**6  # fresh phones for every run
            if load.error or before is None or after is None:
                say(started, f"run {n}: no figures ({load.error or 'intake gone'})")
                continue
            others = delta(stack_after, stack_before)
            result = figures(load, after.cpu_s - before.cpu_s, others)
            say(started, f"{'warm-up' if warmup else f'run {n}'}: {result.line()}")
            if not warmup:
                runs.append(result)
    finally:
        await asyncio.to_thread(services.stop)
    return runs


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not wrk_available():
        print("wrk is not installed (make tools)")
        return 1
    runs = asyncio.run(measure(args))
    if not runs:
        return 1

    print(summary_line(runs, workers=args.workers), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
