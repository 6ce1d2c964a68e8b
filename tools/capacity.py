"""``python -m tools.capacity`` (``make capacity``): partitions, replicas and cores per stage.

A calculation, not a forecast. Inputs: the target and policy of ``deploy/capacity.toml``, each
stage's CPU milliseconds per request measured by ``make bench`` (``bench/results.json`` when
present, else the measured defaults in deploy/capacity.toml with their source), and the consumer
groups the services really subscribe (their apps, built and never started). The model:

- a replica is one process on one core, planned ``utilisation`` busy at the target:
  ``replica_rate = utilisation x 1000 / cpu_ms_per_request`` requests/s;
- ``replicas = ceil(target / replica_rate)`` (at least ``min_replicas``); ``max_replicas`` for
  the autoscaler is ``ceil(replicas x surge_factor)``, raised to the partitions (below);
- a partition is read by one replica of a group, so a topic gets at least the ``max_replicas``
  of every stage reading it, at least one per broker, and the count is a multiple of the broker
  count (leaders spread evenly); the stage's autoscaling ceiling is then its largest input's
  partitions (more replicas would idle);
- KEDA's ``lagThreshold`` is ``lag_target_seconds`` of one replica's work;
- the brokers: ``target x topic_records_per_request`` records/s, written ``replication_factor``
  times over ``brokers``, against the measured producer rate per core.

It prints a table and writes docs/capacity.md; ``--check`` compares docs/capacity.md instead.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import math
import sys
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
INPUTS = REPO / "deploy" / "capacity.toml"
RESULTS = REPO / "bench" / "results.json"
DOC = REPO / "docs" / "capacity.md"
STAGES = ("intake", "verify", "route", "notify")


@dataclass(frozen=True)
class Measured:
    """Per-stage CPU per request and peak RSS, the broker's producer rate, where they came from."""

    source: str
    cpu_ms_per_request: Mapping[str, float]
    rss_mb: Mapping[str, float]
    kafka_produce_per_s: float
    kafka_bench_cores: float
    topic_records_per_request: float
    db_writes_per_request: float
    record_bytes: float


@dataclass(frozen=True)
class StagePlan:
    stage: str
    cpu_ms_per_request: float
    replica_rate: float
    replicas: int
    max_replicas: int
    cores: float
    busy_cores: float
    lag_threshold: int
    rss_mb: float


@dataclass(frozen=True)
class Plan:
    target_per_s: float
    stages: dict[str, StagePlan]
    partitions: dict[str, int]
    broker_records_per_s: float
    broker_mb_per_s: float
    broker_cores: int
    db_writes_per_s: float
    measured: Measured


def round_up(value: float, multiple: int) -> int:
    """The smallest multiple of ``multiple`` that is at least ``value``."""
    return max(multiple, math.ceil(value / multiple) * multiple)


def plan(
    inputs: Mapping[str, Any],
    measured: Measured,
    consumers: Mapping[str, Sequence[tuple[str, Sequence[str]]]],
    topics: Sequence[str],
) -> Plan:
    """The plan for ``inputs`` (deploy/capacity.toml's tables), ``measured`` figures and
    ``consumers`` (stage -> its (group, topics) subscriptions) over every contract topic."""
    target = float(inputs["target"]["requests_per_s"])
    brokers = int(inputs["target"]["brokers"])
    replication = int(inputs["target"]["replication_factor"])
    policy = inputs["policy"]
    share: Mapping[str, float] = inputs.get("topic_share", {})
    utilisation, per_replica = float(policy["utilisation"]), float(policy["cores_per_replica"])
    if not 0 < utilisation <= 1:
        raise ValueError(f"utilisation {utilisation} must be in (0, 1]")

    base: dict[str, tuple[float, int, int]] = {}  # stage -> (rate, replicas, surge replicas)
    for stage in STAGES:
        rate = utilisation * per_replica * 1000 / measured.cpu_ms_per_request[stage]
        replicas = max(int(policy["min_replicas"]), math.ceil(target / rate))
        base[stage] = (rate, replicas, math.ceil(replicas * float(policy["surge_factor"])))

    partitions = dict.fromkeys(topics, brokers)
    for stage, subscriptions in consumers.items():
        rate, _, surge = base[stage]
        for _, group_topics in subscriptions:
            for topic in group_topics:
                # a lane carrying a share of the rate needs that share of the replicas
                wanted = math.ceil(surge * float(share.get(topic, 1.0)))
                partitions[topic] = max(partitions[topic], round_up(wanted, brokers))

    stages: dict[str, StagePlan] = {}
    for stage in STAGES:
        rate, replicas, surge = base[stage]
        inputs_of = [t for _, group_topics in consumers.get(stage, ()) for t in group_topics]
        ceiling = max((partitions[t] for t in inputs_of), default=surge)
        if stage in policy.get("http_stages", ()):
            ceiling = max(ceiling, surge)  # fed by HTTP, not bounded by its topics' partitions
        stages[stage] = StagePlan(
            stage=stage,
            cpu_ms_per_request=measured.cpu_ms_per_request[stage],
            replica_rate=rate,
            replicas=replicas,
            max_replicas=max(replicas, ceiling),
            cores=replicas * per_replica,
            busy_cores=target * measured.cpu_ms_per_request[stage] / 1000,
            lag_threshold=max(1, round(rate * float(policy["lag_target_seconds"]))),
            rss_mb=measured.rss_mb[stage],
        )

    records = target * measured.topic_records_per_request * replication / brokers
    per_core = measured.kafka_produce_per_s / measured.kafka_bench_cores
    return Plan(
        target_per_s=target,
        stages=stages,
        partitions=partitions,
        broker_records_per_s=records,
        broker_mb_per_s=records * measured.record_bytes / 1e6,
        broker_cores=math.ceil(records / per_core / utilisation),
        db_writes_per_s=target * measured.db_writes_per_request,
        measured=measured,
    )


def measured_defaults(inputs: Mapping[str, Any]) -> Measured:
    m = inputs["measured"]
    return Measured(
        source=str(m["source"]),
        cpu_ms_per_request={k: float(v) for k, v in m["cpu_ms_per_request"].items()},
        rss_mb={k: float(v) for k, v in m["rss_mb"].items()},
        kafka_produce_per_s=float(m["kafka_produce_per_s"]),
        kafka_bench_cores=float(m["kafka_bench_cores"]),
        topic_records_per_request=float(m["topic_records_per_request"]),
        db_writes_per_request=float(m["db_writes_per_request"]),
        record_bytes=float(m["record_bytes"]),
    )


def measured_from_results(results: Mapping[str, Any], defaults: Measured) -> Measured:
    """Figures of a ``make bench`` run: CPU per request of each stage at the drained step with the
    most requests (CPU seconds of the step and its drain / requests accepted); what the run lacks
    stays at its default."""
    steps = [s for s in results.get("steps", []) if s.get("drained")]
    if not steps:
        return defaults
    step = max(steps, key=lambda s: int(s["outcomes"]["accepted"]))
    accepted = int(step["outcomes"]["accepted"])
    if accepted <= 0:
        return defaults
    cpu = {n: float(step["cpu_s"][n]) * 1000 / accepted for n in STAGES if n in step["cpu_s"]}
    processes = results.get("processes", {})
    rss = {n: float(processes[n]["rss_peak_mb"]) for n in STAGES if n in processes}
    ratios = results.get("ratios", {})
    kafka = results.get("ceilings", {}).get("kafka", {})
    return Measured(
        source=f"bench/results.json (step {step['label']}, {accepted} requests, drained)",
        cpu_ms_per_request={**defaults.cpu_ms_per_request, **cpu},
        rss_mb={**defaults.rss_mb, **rss},
        kafka_produce_per_s=float(kafka.get("produce_per_s") or defaults.kafka_produce_per_s),
        kafka_bench_cores=float(results.get("cpus") or defaults.kafka_bench_cores),
        topic_records_per_request=float(
            ratios.get("topic_records_per_request") or defaults.topic_records_per_request
        ),
        db_writes_per_request=float(
            ratios.get("db_writes_per_request") or defaults.db_writes_per_request
        ),
        record_bytes=float(results.get("record_size") or defaults.record_bytes),
    )


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}" if value < 10 else f"{value:,.0f}"
    return str(value)


def table(rows: Sequence[Sequence[object]]) -> list[str]:
    """A Markdown table; the first row is the header."""
    text = [[_cell(v) for v in row] for row in rows]
    out = ["| " + " | ".join(text[0]) + " |", "|" + "---|" * len(text[0])]
    return out + ["| " + " | ".join(row) + " |" for row in text[1:]]


def report(p: Plan, inputs: Mapping[str, Any]) -> list[str]:
    t, pol = inputs["target"], inputs["policy"]
    rows: list[list[object]] = [
        ["stage", "CPU ms/request", "requests/s per replica", "replicas", "cores",
         "busy cores", "max replicas", "lagThreshold", "peak RSS MB"],
    ]  # fmt: skip
    for s in p.stages.values():
        rows.append(
            [s.stage, s.cpu_ms_per_request, s.replica_rate, s.replicas, s.cores, s.busy_cores,
             s.max_replicas, s.lag_threshold, s.rss_mb]
        )  # fmt: skip
    total = sum(s.cores for s in p.stages.values())
    rows.append(["all", "", "", sum(s.replicas for s in p.stages.values()), total, "", "", "", ""])
    sizes: dict[int, list[str]] = {}
    for topic, count in p.partitions.items():
        sizes.setdefault(count, []).append(topic)
    part_rows: list[list[object]] = [["partitions", "topics"]]
    part_rows += [[n, ", ".join(sizes[n])] for n in sorted(sizes, reverse=True)]
    return [
        "# Capacity plan",
        "",
        "Written by `make capacity` (tools/capacity.py) from deploy/capacity.toml; do not edit.",
        f"Target {p.target_per_s:,.0f} requests/s (10x the launch-day peak), {t['brokers']} Kafka"
        f" brokers, replication factor {t['replication_factor']}, min.insync.replicas"
        f" {t['min_insync_replicas']}. Replicas planned {pol['utilisation']:.0%} busy, one core"
        f" each; autoscaling up to {pol['surge_factor']}x; lagThreshold ="
        f" {pol['lag_target_seconds']} s of one replica's work.",
        f"Measured figures: {p.measured.source}.",
        "",
        "## Stages",
        "",
        *table(rows),
        "",
        "## Partitions",
        "",
        "A partition is read by one replica of a consumer group: a topic gets at least the",
        "autoscaling ceiling of every stage that reads it (scaled by the share of the rate the",
        "topic carries), at least one per broker, in multiples of the broker count.",
        "",
        *table(part_rows),
        "",
        "## Kafka and the database",
        "",
        f"- Each broker writes {p.broker_records_per_s:,.0f} records/s"
        f" ({p.broker_mb_per_s:,.1f} MB/s; {p.measured.topic_records_per_request} topic records"
        f" per request, every record on {t['replication_factor']} brokers): about"
        f" {p.broker_cores} cores per broker at the measured"
        f" {p.measured.kafka_produce_per_s / p.measured.kafka_bench_cores:,.0f} records/s per"
        " core.",
        f"- The MongoDB primary takes {p.db_writes_per_s:,.0f} document writes/s"
        f" ({p.measured.db_writes_per_request} per request). Not measured on MongoDB here: the"
        " bench's database is FerretDB; measure the replica set before relying on it.",
        "",
    ]


@functools.cache
def subscriptions() -> dict[str, list[tuple[str, list[str]]]]:
    """Each stage's consumer groups and their topics, from its app (built, never started)."""
    from tools.contracts import build_apps

    logging.disable(logging.WARNING)  # the apps' warnings about keys not configured here
    try:
        apps = build_apps()
    finally:
        logging.disable(logging.NOTSET)
    return {
        name: [(sub.group, list(sub.topics)) for sub in app.state.runtime.consumers]
        for name, app in apps.items()
    }


def compute(results: Path | None = RESULTS) -> tuple[Plan, dict[str, Any]]:
    from shared.topics import Topic

    inputs = tomllib.loads(INPUTS.read_text(encoding="utf-8"))
    measured = measured_defaults(inputs)
    if results is not None and results.exists():
        measured = measured_from_results(json.loads(results.read_text()), measured)
    return plan(inputs, measured, subscriptions(), [t.value for t in Topic]), inputs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--defaults", action="store_true", help="ignore bench/results.json")
    parser.add_argument("--check", action="store_true", help="compare docs/capacity.md only")
    args = parser.parse_args(argv)
    p, inputs = compute(None if args.defaults or args.check else RESULTS)
    text = "\n".join(report(p, inputs))
    if args.check:
        same = DOC.exists() and DOC.read_text(encoding="utf-8") == text
        print(f"[capacity] docs/capacity.md {'is' if same else 'is NOT'} the model's output")
        return 0 if same else 1
    print(text)
    DOC.write_text(text, encoding="utf-8")
    print(f"[capacity] written {DOC.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
