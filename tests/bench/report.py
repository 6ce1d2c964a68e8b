"""The bench's table, ``bench/results.json``, the PNG plots and the last line."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.bench.backlog import BacklogResult
from tests.bench.breakdown import db_time_lines, profile_json, profile_section, profiled_step
from tests.bench.ceilings import DatabaseCeiling, KafkaCeiling
from tests.bench.stats import (
    Quantile,
    Summary,
    ceiling_ratio,
    held,
    per_request,
    percentile,
    step_for_headline,
    summary_line,
    table,
)
from tests.bench.steps import StepResult
from tests.bench.watch import Outcomes

SERVICE_NAMES = ("intake", "verify", "route", "notify")
STEP_HEADERS = (
    *("step", "s", "accept/s", "e2e/s", "accepted", "dispatched", "review", "rejected", "dlq"),
    *("lost", "drain s", "disp p50", "p95", "p99", "notif p50", "p95", "p99"),
)
LOAD_HEADERS = (
    *("step", "offered/s", "wrk 202", "429", "4xx", "5xx", "errors", "http p99 ms", "held"),
    *SERVICE_NAMES,
    *("kafka", "ferretdb", "wrk"),
)


@dataclass
class Run:
    """Everything one run measured."""

    args: dict[str, Any]
    record_size: int
    partitions: int
    kafka: KafkaCeiling | None = None
    database: DatabaseCeiling | None = None
    steps: list[StepResult] = field(default_factory=list)
    backlog: BacklogResult | None = None
    processes: dict[str, dict[str, float]] = field(default_factory=dict)
    elapsed_s: float = 0.0
    notes: list[str] = field(default_factory=list)


def step_held(step: StepResult) -> bool:
    return held(
        step.offered_per_s,
        step.load.accept_per_s,
        step.outcomes.e2e_per_s,
        step.outcomes.lost,
    )


def best_step(run: Run) -> StepResult | None:
    """The step with the highest end-to-end rate: its per-request figures make the ratios."""
    return max(run.steps, key=lambda s: s.outcomes.e2e_per_s, default=None)


def counting_step(run: Run) -> StepResult | None:
    """The step whose records and writes per request are counted: the drained step with the
    most requests (an undrained step has written for requests it has not finished), else the
    best step."""
    drained = [s for s in run.steps if s.drained and s.decided]
    if drained:
        return max(drained, key=lambda s: s.decided)
    return best_step(run)


def ratios(run: Run) -> dict[str, float | None]:
    best, step = best_step(run), counting_step(run)
    if best is None or step is None:
        return {}
    e2e = best.outcomes.e2e_per_s
    hops = step.outcomes.records_per_request
    writes = per_request(step.writes, step.decided)
    produce = run.kafka.produce_per_s if run.kafka else None
    insert = run.database.insert_per_s if run.database else None
    return {
        "e2e_per_s": e2e,
        "topic_records_per_request": hops,
        "db_writes_per_request": writes,
        "db_write_commands_per_request": per_request(
            sum(step.write_commands.values()), step.decided
        ),
        "kafka_bound_per_s": produce / hops if produce and hops else None,
        "db_bound_per_s": insert / writes if insert and writes else None,
        "e2e_to_kafka_bound": ceiling_ratio(e2e, produce or 0, hops),
        "e2e_to_db_bound": ceiling_ratio(e2e, insert or 0, writes),
    }


def summary(run: Run) -> Summary:
    saturation = [s for s in run.steps if s.offered_per_s is None]
    accept = (
        saturation[-1].load.accept_per_s
        if saturation
        else max((s.load.accept_per_s for s in run.steps), default=None)
    )
    headline = step_for_headline([(s.offered_per_s, step_held(s)) for s in run.steps])
    p99 = run.steps[headline].outcomes.dispatch["p99"] if headline is not None else None
    p1 = run.backlog.p1.dispatch["p99"] if run.backlog else None
    lost = sum(s.outcomes.lost for s in run.steps)
    if run.backlog:
        lost += run.backlog.p1.lost + (run.backlog.p1_sent - run.backlog.p1.accepted)
    rss = [run.processes[n]["rss_peak_mb"] for n in SERVICE_NAMES if n in run.processes]
    return Summary(
        e2e_per_s=max((s.outcomes.e2e_per_s for s in run.steps), default=None),
        accept_per_s=accept,
        p99_dispatch_ms_at_1000=p99.ms if p99 else None,
        p1_p99_ms_under_backlog=p1.ms if p1 else None,
        lost=lost if run.steps or run.backlog else None,
        kafka_produce_per_s=run.kafka.produce_per_s if run.kafka else None,
        db_insert_per_s=run.database.insert_per_s if run.database else None,
        max_rss_mb=max(rss) if rss else None,
    )


def lines(run: Run) -> list[str]:
    """The table printed at the end (before the last line)."""
    out: list[str] = []
    k, d = run.kafka, run.database
    rows: list[list[object]] = []
    if k is not None:
        size = f"{k.record_size} B x {k.partitions} partitions, acks=all, idempotent"
        rows.append(["Kafka ProducerPerformance", k.produce_per_s, "records/s", size])
        rows.append(["Kafka ConsumerPerformance", k.consume_per_s, "records/s", "fetch rate"])
        if k.error:
            rows.append(["Kafka", None, "", k.error[:60]])
    if d is not None:
        what = f"insert_many of {d.batch} x ~{d.document_bytes} B, unordered"
        rows.append(["Database batched insert", d.insert_per_s, "documents/s", what])
        if d.error:
            rows.append(["Database", None, "", d.error[:60]])
    if rows:
        out += ["Ceilings (same stack, same run)"]
        out += table(["ceiling", "rate", "unit", "how"], rows)
    if run.steps:
        out += ["", "Pipeline steps (offered load through intake's HTTP API; latencies in ms)"]
        out += table(
            STEP_HEADERS,
            [_step_row(s) for s in run.steps],
        )
        out += ["", "Per step: HTTP answers (wrk) and CPU seconds used during the step"]
        out += table(
            LOAD_HEADERS,
            [_load_row(s) for s in run.steps],
        )
        for s in run.steps:
            out += ["", *db_time_lines(s)]
        if (profiled := profiled_step(run.steps)) is not None:
            out += ["", *profile_section(profiled, run.args.get("profile"))]
    b = run.backlog
    if b is not None:
        out += [
            "",
            f"P1 under a backlog of {b.backlog} P3 requests (produced in {b.produce_s:.1f}s)",
        ]
        p1, p3 = b.p1, b.p3
        out += table(
            ["requests", "sent", "accepted", "dispatched", "left", "p50 ms", "p99 ms", "waited s"],
            [
                _backlog_row("P1 via HTTP", b.p1_sent, p1, b.waited_s),
                _backlog_row("P3 backlog", b.backlog, p3, b.waited_s),
            ],
        )
        if b.p1_verify_ms:
            out.append(
                f"  P1 submit→verified p50/p99 {_p(b.p1_verify_ms, 50)}/{_p(b.p1_verify_ms, 99)}"
                f" ms, verified→dispatched {_p(b.p1_route_ms, 50)}/{_p(b.p1_route_ms, 99)} ms"
            )
    if run.processes:
        out += ["", "Processes (peak RSS = VmHWM; CPU over the whole run)"]
        out += table(
            ["process", "peak RSS MB", "CPU s"],
            [[n, p["rss_peak_mb"], p["cpu_s"]] for n, p in run.processes.items()],
        )
    r = ratios(run)
    if r:
        best, step = best_step(run), counting_step(run)
        assert best is not None
        assert step is not None
        out += [
            "",
            f"Ratios (e2e rate of the best step, {best.label}; per-request counts of step"
            f" {step.label}{'' if step.drained else ', not drained'})",
        ]
        out += table(
            ["figure", "value", "meaning"],
            [
                ["e2e rate", r["e2e_per_s"], "requests/s dispatched"],
                ["topic records / request", r["topic_records_per_request"], "all topics"],
                ["db writes / request", r["db_writes_per_request"], "docs + other writes"],
                ["db write commands / req.", r["db_write_commands_per_request"], "metrics"],
                ["Kafka-bound rate", r["kafka_bound_per_s"], "produce rate / records"],
                ["database-bound rate", r["db_bound_per_s"], "insert rate / writes"],
                ["e2e / Kafka bound", r["e2e_to_kafka_bound"], ""],
                ["e2e / database bound", r["e2e_to_db_bound"], ""],
            ],
        )
    out += ["", *run.notes]
    return out


def _p(values: list[float], q: float) -> str:
    quantile = percentile([(v, False) for v in values], q)
    return "-" if quantile is None else quantile.text()


def _backlog_row(name: str, sent: int, o: Outcomes, waited: float) -> list[object]:
    return [
        name,
        sent,
        o.accepted,
        o.dispatched,
        o.lost,
        o.dispatch["p50"],
        o.dispatch["p99"],
        waited,
    ]


def _step_row(s: StepResult) -> list[object]:
    o = s.outcomes
    return [
        s.label,
        s.seconds,
        o.accept_per_s,
        o.e2e_per_s,
        o.accepted,
        o.dispatched,
        o.needs_review,
        o.rejected,
        o.dead_lettered,
        o.lost,
        f"{s.drain_s:.0f}{'' if s.drained else '+'}",
        o.dispatch["p50"],
        o.dispatch["p95"],
        o.dispatch["p99"],
        o.notify["p50"],
        o.notify["p95"],
        o.notify["p99"],
    ]


def _load_row(s: StepResult) -> list[object]:
    c = s.load.counts
    errors = sum(c.get(k, 0) for k in ("connect_errors", "read_errors", "write_errors", "timeouts"))
    services = [s.cpu_s.get(n) for n in SERVICE_NAMES]
    return [
        s.label,
        s.offered_per_s if s.offered_per_s else "max",
        c.get("accepted", 0),
        c.get("rate_limited", 0),
        c.get("client_errors", 0),
        c.get("server_errors", 0),
        errors,
        c.get("latency_p99_us", 0) / 1000 if c else None,
        "yes" if step_held(s) else "no",
        *services,
        s.cpu_s.get("kafka"),
        s.cpu_s.get("ferretdb"),
        s.cpu_s.get("wrk"),
    ]


def _json(value: Any) -> Any:
    if isinstance(value, Quantile):
        return {"ms": round(value.ms, 1), "censored": value.censored}
    if isinstance(value, dict):
        return {str(k): _json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    if hasattr(value, "__dataclass_fields__"):
        return {n: _json(getattr(value, n)) for n in value.__dataclass_fields__}
    if isinstance(value, float):
        return round(value, 3)
    return value


def results(run: Run) -> dict[str, Any]:
    steps = []
    for s in run.steps:
        data = _json(s)
        data["dispatch_ms"] = sorted(round(x, 1) for x in s.dispatch_ms)
        data["accept_per_s"] = round(s.outcomes.accept_per_s, 1)
        data["wrk_accept_per_s"] = round(s.load.accept_per_s, 1)
        data["e2e_per_s"] = round(s.outcomes.e2e_per_s, 1)
        data["held"] = step_held(s)
        data["db_writes_per_request"] = per_request(s.writes, s.decided)
        steps.append(data)
    return {
        "args": run.args,
        "cpus": os.cpu_count(),
        "elapsed_s": round(run.elapsed_s, 1),
        "record_size": run.record_size,
        "partitions": run.partitions,
        "ceilings": {
            "kafka": (_json(run.kafka) or {})
            | (
                {"produce_per_s": run.kafka.produce_per_s, "consume_per_s": run.kafka.consume_per_s}
                if run.kafka
                else {}
            ),
            "database": (_json(run.database) or {})
            | ({"insert_per_s": run.database.insert_per_s} if run.database else {}),
        },
        "steps": steps,
        "backlog": _json(run.backlog),
        "profile": profile_json(run.steps, run.args.get("profile")),
        "processes": _json(run.processes),
        "ratios": _json(ratios(run)),
        "summary": _json(summary(run)),
        "summary_line": summary_line(summary(run)),
    }


def write(run: Run, out_dir: Path) -> list[Path]:
    """results.json and the plots; the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "results.json"
    path.write_text(json.dumps(results(run), indent=1, ensure_ascii=False) + "\n")
    from tests.bench.plots import plot_latency, plot_throughput

    return [path, plot_throughput(run, out_dir), plot_latency(run, out_dir)]
