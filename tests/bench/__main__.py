"""``make bench`` (deploy/local/bench.sh starts a fresh stack of its own, then runs this):

1. the ceilings: Kafka's ProducerPerformance and ConsumerPerformance at the pipeline's record
   size and partition count, and the database's batched-insert rate;
2. the pipeline at fixed offered loads through intake's HTTP API (wrk, paced), and as fast as
   wrk can send ("max": intake's accept rate at saturation), each on fresh services with a
   bounded drain wait; per step, the database time per request by service, command and
   collection, and with ``--profile DIR`` py-spy samples of the four services during the highest
   step (the top frames of the stage that used the most CPU);
3. P1 requests through HTTP while a backlog of P3 requests waits on the submitted topic;
4. a table, ``bench/results.json``, ``bench/throughput.png`` and ``bench/latency.png``, and the
   last line ``bench: e2e_per_s=… accept_per_s=… …``.

Prints figures and asserts nothing: exits 0 unless it could not run.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import tomllib
from pathlib import Path

from tests.bench import bodies
from tests.bench.backlog import backlog_step
from tests.bench.ceilings import database_ceiling, kafka_ceiling
from tests.bench.load import own_usage, wrk_available
from tests.bench.procs import read_proc, stack_pids
from tests.bench.report import Run, lines, step_held, summary, write
from tests.bench.stats import summary_line
from tests.bench.steps import REPO, Bench, load_step

PARTS = ("ceilings", "steps", "backlog")
# The warm-up before the steps: a fresh broker spends its first minute of pipeline traffic
# compiling (about a third of its CPU then goes to the JIT's compiler threads), which would be
# charged to the first step and slow every service beside it.
WARMUP_RATE = 200.0
WARMUP_S = 30.0
WARMUP_DRAIN_S = 30.0  # its drain wait; its figures are not kept, so a short one
STARTUP_S = 15.0  # starting one service set and stopping it, roughly


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="make bench BENCH_ARGS=…", description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0, help="load per step (60)")
    parser.add_argument(
        "--steps",
        default="250,500,1000,2000,max",
        help="offered loads in requests/s, 'max' for as fast as wrk can send",
    )
    parser.add_argument("--drain", type=float, default=60.0, help="drain wait per step (60 s)")
    parser.add_argument(
        "--warmup",
        type=float,
        default=WARMUP_S,
        help=f"an uncounted load at {WARMUP_RATE:.0f}/s before the steps, so the broker's JIT"
        f" has compiled the pipeline's request paths ({WARMUP_S:.0f} s; 0: none)",
    )
    parser.add_argument("--backlog", type=int, default=50_000, help="P3 records queued (50000)")
    parser.add_argument("--p1", type=int, default=50, help="P1 requests under the backlog (50)")
    parser.add_argument(
        "--p1-wait", type=float, default=120.0, help="how long to wait for the P1 (120 s)"
    )
    parser.add_argument(
        "--kafka-records", type=int, default=300_000, help="ProducerPerformance records"
    )
    parser.add_argument("--db-seconds", type=float, default=10.0, help="batched-insert run")
    parser.add_argument("--parts", default=",".join(PARTS), help="ceilings,steps,backlog")
    parser.add_argument("--out", default=str(REPO / "bench"), help="results.json and plots")
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="py-spy samples the four services during the highest load step: one file of"
        " collapsed stacks per service in DIR, the slowest stage's top frames in the table",
    )
    return parser.parse_args(argv)


def parse_steps(text: str) -> list[float | None]:
    steps: list[float | None] = []
    for part in text.split(","):
        part = part.strip().lower()
        if part in ("max", "saturation"):
            steps.append(None)
        elif part:
            steps.append(float(part))
    return steps


def highest_step(steps: list[float | None]) -> int | None:
    """Index of the highest offered load ('max' above any rate)."""
    if not steps:
        return None
    return max(range(len(steps)), key=lambda i: (steps[i] is None, steps[i] or 0.0, -i))


def partitions() -> int:
    data = tomllib.loads((REPO / "config" / "topics.toml").read_text(encoding="utf-8"))
    return int(data["topics"]["help.requests.submitted"])


def plan_seconds(args: argparse.Namespace, parts: set[str], steps: int) -> dict[str, float]:
    """The most each part can take (the waits are bounded, so is this)."""
    return {
        "ceilings": 40.0 + args.kafka_records / 10_000 + args.db_seconds
        if "ceilings" in parts
        else 0,
        "steps": (
            steps * (STARTUP_S + args.seconds + args.drain + 5)
            + (STARTUP_S + args.warmup + WARMUP_DRAIN_S + 5 if args.warmup > 0 else 0)
            if "steps" in parts
            else 0
        ),
        "backlog": STARTUP_S + args.backlog / 1000 + 10 + args.p1_wait if "backlog" in parts else 0,
    }


async def run(args: argparse.Namespace) -> int:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:39092")
    uri = os.environ.get(
        "MONGODB_URI", "mongodb://127.0.0.1:27021/?directConnection=true&retryWrites=false"
    )
    run_dir = Path(os.environ.get("CITYHELP_RUN_DIR", str(REPO / ".run" / "bench")))
    bench = Bench(bootstrap, uri, run_dir)
    try:
        return await measure(args, bench)
    finally:
        await asyncio.to_thread(bench.stop_all)


async def measure(args: argparse.Namespace, bench: Bench) -> int:
    bootstrap, uri, run_dir = bench.bootstrap, bench.uri, bench.run_dir
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    steps = parse_steps(args.steps)
    result = Run(args=vars(args), record_size=bodies.record_size(), partitions=partitions())
    budget = plan_seconds(args, parts, len(steps))
    remaining = dict(budget)

    def phase(name: str, what: str) -> None:
        to_go = sum(remaining.values())
        bench.say(f"{what} (elapsed {bench.elapsed:.0f}s, at most ~{to_go / 60:.1f} min to go)")
        remaining[name] = 0

    bench.say(
        f"plan: {', '.join(p for p in PARTS if p in parts)}; at most"
        f" ~{sum(budget.values()) / 60:.0f} min; Kafka {bootstrap}, data in {run_dir}"
    )
    if "ceilings" in parts:
        phase(
            "ceilings",
            f"ceilings: Kafka ProducerPerformance, {args.kafka_records} records of "
            f"{result.record_size} B (a serialized submitted request) on {result.partitions} "
            "partitions, acks=all, idempotent",
        )
        result.kafka = await kafka_ceiling(
            bootstrap,
            record_size=result.record_size,
            partitions=result.partitions,
            records=args.kafka_records,
        )
        k = result.kafka
        bench.say(
            f"  produce {k.produce_per_s or 0:.0f} records/s, consume {k.consume_per_s or 0:.0f}"
            f" records/s{'; ' + k.error if k.error else ''}"
        )
        bench.say(f"ceilings: database insert_many of 100 x ~1 KB for {args.db_seconds:.0f}s")
        result.database = await database_ceiling(uri, seconds=args.db_seconds)
        d = result.database
        bench.say(f"  {d.insert_per_s or 0:.0f} documents/s{'; ' + d.error if d.error else ''}")
    if "steps" in parts:
        if not wrk_available():
            result.notes.append("steps skipped: wrk is missing (deploy/local/tools.sh installs it)")
            bench.say(result.notes[-1])
        else:
            profiled = highest_step(steps) if args.profile else None
            if args.warmup > 0:
                await warm_up(bench, args.warmup)
            for n, rate in enumerate(steps):
                label = f"{rate:.0f}/s" if rate else "max"
                remaining["steps"] = (len(steps) - n) * (budget["steps"] / max(1, len(steps)))
                phase("steps", f"step {n + 1}/{len(steps)}: {label} for {args.seconds:.0f}s")
                remaining["steps"] = (len(steps) - n - 1) * (budget["steps"] / len(steps))
                try:
                    step = await load_step(
                        bench,
                        label,
                        rate,
                        args.seconds,
                        args.drain,
                        base=n * 20_000_000,
                        profile_dir=Path(args.profile) if n == profiled else None,
                    )
                except Exception as exc:
                    result.notes.append(f"step {label} could not run: {exc!r}")
                    bench.say(result.notes[-1])
                    continue
                result.steps.append(step)
                o = step.outcomes
                bench.say(
                    f"  {label}: accepted {o.accepted} ({o.accept_per_s:.0f}/s), dispatched "
                    f"{o.dispatched} ({o.e2e_per_s:.0f}/s end to end), lost {o.lost}, "
                    f"p99 dispatch {o.dispatch['p99'].text() if o.dispatch['p99'] else '-'} ms;"
                    f" load average {step.load_average[0]:.1f}"
                )
    if "backlog" in parts:
        phase(
            "backlog",
            f"backlog: {args.p1} P1 requests through HTTP behind {args.backlog} queued P3",
        )
        try:
            result.backlog = await backlog_step(
                bench, args.backlog, args.p1, args.p1_wait, base=90_000_000
            )
            b = result.backlog
            p99 = b.p1.dispatch["p99"]
            bench.say(
                f"  P1 dispatched {b.p1.dispatched}/{b.p1.accepted}, p99 "
                f"{p99.text() if p99 else '-'} ms; P3 backlog drained {b.p3.dispatched}/"
                f"{b.backlog} meanwhile"
            )
        except Exception as exc:
            result.notes.append(f"backlog could not run: {exc!r}")
            bench.say(result.notes[-1])
    collect_processes(bench, result)
    result.elapsed_s = bench.elapsed
    result.notes += notes(result)
    paths: list[Path] = []
    try:
        paths = write(result, Path(args.out))
    except Exception as exc:
        result.notes.append(f"results could not be written: {exc!r}")
    print()
    for line in lines(result):
        print(line)
    if paths:
        shown = [str(p.relative_to(REPO)) if p.is_relative_to(REPO) else str(p) for p in paths]
        print(f"written: {', '.join(shown)}")
    print(f"elapsed {bench.elapsed:.0f}s")
    print(summary_line(summary(result)), flush=True)
    measured = result.kafka or result.database or result.steps or result.backlog
    return 0 if measured else 1


async def warm_up(bench: Bench, seconds: float) -> None:
    """An uncounted load at ``WARMUP_RATE`` on services of its own; its figures are only said."""
    bench.say(f"warm-up: {WARMUP_RATE:.0f}/s for {seconds:.0f}s, not counted")
    try:
        step = await load_step(
            bench, "warm-up", WARMUP_RATE, seconds, WARMUP_DRAIN_S, base=95_000_000
        )
    except Exception as exc:
        bench.say(f"  warm-up could not run: {exc!r}; the first step runs on a cold broker")
        return
    o = step.outcomes
    bench.say(f"  warm-up: accepted {o.accepted}, dispatched {o.dispatched}; not counted")


def collect_processes(bench: Bench, result: Run) -> None:
    for name, figures in bench.service_procs.items():
        result.processes[name] = {
            "rss_peak_mb": max(f.rss_peak_mb for f in figures),
            "cpu_s": sum(f.cpu_s for f in figures),
        }
    for name, pid in stack_pids(bench.run_dir).items():
        if (f := read_proc(pid)) is not None:
            result.processes[name] = {"rss_peak_mb": f.rss_peak_mb, "cpu_s": f.cpu_s}
    if bench.loads:
        result.processes["wrk (load)"] = {
            "rss_peak_mb": max(load.max_rss_mb for load in bench.loads),
            "cpu_s": sum(load.cpu_s for load in bench.loads),
        }
    if result.kafka is not None:
        result.processes["Kafka perf tools"] = {
            "rss_peak_mb": result.kafka.tools_rss_mb,
            "cpu_s": result.kafka.producer_cpu_s + result.kafka.consumer_cpu_s,
        }
    cpu, rss = own_usage()
    result.processes["bench (observer)"] = {"rss_peak_mb": rss, "cpu_s": cpu}


def notes(result: Run) -> list[str]:
    out = [
        "Notes: latencies are measured from the topics (submit = the submitted record's ce_time;"
        " dispatched = the first dispatch record's timestamp; notification = the first record on"
        " help.notifications). '>N': a lower bound (the percentile falls on a request not there"
        " yet when the bench stopped waiting). 'drain s' with '+': the drain wait ran out.",
        "lost = accepted, neither dispatched nor sent to review / rejected when the drain wait"
        " ended (dlq: of those, dead-lettered by verify or route). Each step runs on fresh"
        " services; 'held' = >=90% of the offered rate accepted and carried end to end, none lost.",
        "The last line: e2e_per_s = best step; accept_per_s = the 'max' step's HTTP 202s per"
        " second (wrk); p99 at the 1000/s step (else the highest step held, else the lowest);"
        " lost = all steps and the P1; max_rss_mb = the largest of the four services; -1 = not"
        " measured.",
    ]
    if result.steps:
        out.append(
            "Database time: cityhelp_db_command_seconds (_sum, _count) of each service, from the"
            " step's start to its drain's end, per decided request. PyMongo times a command from"
            " sending it to reading its reply, so a wait for the service's own busy event loop"
            " counts, and commands in flight together overlap: it is not CPU time."
        )
    if any(s.profiles for s in result.steps):
        out.append(
            "Profile: py-spy samples each service's Python stacks from the load's start to the"
            " drain's end (idle waits not sampled); own = the frame itself was running, total ="
            " the frame was on the stack. Sampling pauses the process briefly: the profiled"
            " step's rates are a little lower than unprofiled."
        )
    offered = [s for s in result.steps if s.offered_per_s]
    if offered and not any(step_held(s) for s in offered):
        out.append("No offered step was held: the p99 in the last line is the lowest step's.")
    return out


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format="[bench] %(levelname)s %(name)s: %(message)s")
    args = parse_args()
    try:
        return asyncio.run(run(args))
    except KeyboardInterrupt:
        print("[bench] interrupted", flush=True)
        return 130


if __name__ == "__main__":
    sys.exit(main())
