"""The bench's pure arithmetic: percentiles with censored values, the ceiling ratios, parsing of
Kafka's performance tools and of Prometheus text (database commands' counts and time), and the
summary line. No I/O here, so that
tests/unit/test_bench.py can check every figure the bench prints.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

# Database commands that write (PyMongo command names, as in cityhelp_db_command_seconds).
WRITE_COMMANDS = frozenset({"insert", "update", "delete", "findAndModify"})


@dataclass(frozen=True)
class Quantile:
    """A percentile of latencies in milliseconds. ``censored``: the value is only a lower bound
    (the request it falls on had not got there when the bench stopped waiting)."""

    ms: float
    censored: bool = False

    def text(self) -> str:
        return f"{'>' if self.censored else ''}{self.ms:.0f}"


def percentile(values: Sequence[tuple[float, bool]], q: float) -> Quantile | None:
    """Nearest-rank percentile ``q`` (0 < q <= 100) of ``(ms, censored)`` pairs; a censored pair
    is a lower bound that sorts by its bound. None for no values."""
    if not values:
        return None
    if not 0 < q <= 100:
        raise ValueError(f"percentile {q} outside (0, 100]")
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    ms, censored = ordered[rank - 1]
    return Quantile(ms, censored)


def quantiles(
    values: Sequence[tuple[float, bool]], qs: Iterable[float] = (50, 95, 99)
) -> dict[str, Quantile | None]:
    return {f"p{q:g}": percentile(values, q) for q in qs}


def per_request(total: float, requests: int) -> float | None:
    """``total`` (records, commands, documents) divided by the requests it served."""
    return total / requests if requests > 0 else None


def ceiling_ratio(
    e2e_per_s: float, ceiling_per_s: float, per_request: float | None
) -> float | None:
    """The pipeline's end-to-end rate as a share of what a resource allows: a ceiling of
    ``ceiling_per_s`` operations per second, used ``per_request`` times by each request, allows
    ``ceiling_per_s / per_request`` requests per second."""
    if ceiling_per_s <= 0 or not per_request:
        return None
    return e2e_per_s / (ceiling_per_s / per_request)


@dataclass(frozen=True)
class ProducerPerf:
    records: int
    per_s: float
    mb_per_s: float
    avg_ms: float
    max_ms: float
    p50_ms: float | None = None
    p99_ms: float | None = None


_PRODUCER = re.compile(
    r"(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), ([\d.]+) ms avg latency, "
    r"([\d.]+) ms max latency(?:, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th)?"
)


def parse_producer_performance(output: str) -> ProducerPerf | None:
    """The final summary line of ``ProducerPerformance`` (the one with percentiles; the periodic
    lines before it have none), else the last line that parses."""
    found = [m for m in (_PRODUCER.search(line) for line in output.splitlines()) if m]
    if not found:
        return None
    final = next((m for m in reversed(found) if m.group(6)), found[-1])
    return ProducerPerf(
        records=int(final.group(1)),
        per_s=float(final.group(2)),
        mb_per_s=float(final.group(3)),
        avg_ms=float(final.group(4)),
        max_ms=float(final.group(5)),
        p50_ms=float(final.group(6)) if final.group(6) else None,
        p99_ms=float(final.group(8)) if final.group(8) else None,
    )


def parse_consumer_performance(output: str) -> dict[str, str] | None:
    """``ConsumerPerformance``'s header line and its values line, as a mapping by column name
    (``nMsg.sec`` counts the group's join, ``fetch.nMsg.sec`` only the fetching)."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for i, line in enumerate(lines):
        if line.startswith("start.time") and i + 1 < len(lines):
            names = [n.strip() for n in line.split(",")]
            values = [v.strip() for v in lines[i + 1].split(",")]
            if len(values) == len(names):
                return dict(zip(names, values, strict=True))
    return None


_SAMPLE = re.compile(r"^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def metric_samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """Every sample of one metric in Prometheus text format, with its labels."""
    samples = []
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match and match.group(1) == name:
            labels = dict(_LABEL.findall(match.group(2) or ""))
            samples.append((labels, float(match.group(3))))
    return samples


# Per (command, collection): the seconds and the calls a service's commands took.
CommandTotals = Mapping[tuple[str, str], tuple[float, float]]


def db_command_totals(text: str) -> dict[tuple[str, str], tuple[float, float]]:
    """Seconds and calls per (command, collection), every outcome together, from a service's
    /metrics (``cityhelp_db_command_seconds_sum`` and ``_count``)."""
    totals: dict[tuple[str, str], list[float]] = {}
    for column, suffix in enumerate(("_sum", "_count")):
        for labels, value in metric_samples(text, "cityhelp_db_command_seconds" + suffix):
            key = (labels.get("command", "?"), labels.get("collection", "?"))
            totals.setdefault(key, [0.0, 0.0])[column] += value
    return {key: (seconds, calls) for key, (seconds, calls) in totals.items()}


def write_counts(totals: CommandTotals) -> dict[str, float]:
    """Write commands per collection (``<command>:<collection>``) of one service's totals."""
    return {
        f"{command}:{collection}": calls
        for (command, collection), (_, calls) in totals.items()
        if command in WRITE_COMMANDS
    }


def db_write_commands(text: str) -> dict[str, float]:
    """Write commands per collection (``<command>:<collection>``) from a service's /metrics."""
    return write_counts(db_command_totals(text))


@dataclass(frozen=True)
class DbTime:
    """What one service's commands of one kind on one collection took over a step, per request
    (as PyMongo times a command: from sending it to reading its reply)."""

    service: str
    command: str
    collection: str
    ms_per_request: float
    calls_per_request: float
    mean_ms: float  # per call


def db_time(
    after: Mapping[str, CommandTotals], before: Mapping[str, CommandTotals], requests: int
) -> list[DbTime]:
    """Database time per request between two scrapes of every service's totals (by service
    name), biggest first; a command not called in between is left out."""
    if requests <= 0:
        return []
    rows = []
    for service, totals in after.items():
        earlier = before.get(service, {})
        for (command, collection), (seconds, calls) in totals.items():
            seconds_before, calls_before = earlier.get((command, collection), (0.0, 0.0))
            seconds, calls = seconds - seconds_before, calls - calls_before
            if calls <= 0:
                continue
            rows.append(
                DbTime(
                    service=service,
                    command=command,
                    collection=collection,
                    ms_per_request=seconds * 1000 / requests,
                    calls_per_request=calls / requests,
                    mean_ms=seconds * 1000 / calls,
                )
            )
    return sorted(rows, key=lambda r: (-r.ms_per_request, r.service, r.command, r.collection))


def db_writes(write_commands: Mapping[str, float], inserted: Mapping[str, int]) -> float:
    """Database writes as the bench counts them: each inserted document, and each write command
    that inserts nothing (updates, deletes, find-and-modify), from ``<command>:<collection>``
    counts."""
    others = sum(
        n for k, n in write_commands.items() if k.split(":")[0] in WRITE_COMMANDS - {"insert"}
    )
    return sum(inserted.values()) + others


def delta(after: Mapping[str, float], before: Mapping[str, float]) -> dict[str, float]:
    """What grew between two counter snapshots (keys of either; nothing negative)."""
    keys = set(after) | set(before)
    grown = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in keys}
    return {k: v for k, v in sorted(grown.items()) if v > 0}


@dataclass(frozen=True)
class Summary:
    """The figures of the bench's last line; None where the run could not measure one."""

    e2e_per_s: float | None
    accept_per_s: float | None
    p99_dispatch_ms_at_1000: float | None
    p1_p99_ms_under_backlog: float | None
    lost: int | None
    kafka_produce_per_s: float | None
    db_insert_per_s: float | None
    max_rss_mb: float | None


def _int(value: float | None) -> str:
    return "-1" if value is None or not math.isfinite(value) else str(round(value))


def summary_line(s: Summary) -> str:
    """``bench: e2e_per_s=N accept_per_s=N …``: integers, -1 for a figure not measured."""
    fields = (
        ("e2e_per_s", s.e2e_per_s),
        ("accept_per_s", s.accept_per_s),
        ("p99_dispatch_ms_at_1000", s.p99_dispatch_ms_at_1000),
        ("p1_p99_ms_under_backlog", s.p1_p99_ms_under_backlog),
        ("lost", None if s.lost is None else float(s.lost)),
        ("kafka_produce_per_s", s.kafka_produce_per_s),
        ("db_insert_per_s", s.db_insert_per_s),
        ("max_rss_mb", s.max_rss_mb),
    )
    return "bench: " + " ".join(f"{name}={_int(value)}" for name, value in fields)


def held(offered: float | None, accept_per_s: float, e2e_per_s: float, lost: int) -> bool:
    """Whether a step's offered load was held: at least 90 % of it accepted and carried end to
    end, and nothing left undecided. A saturation step (no offered rate) is never "held"."""
    if offered is None or offered <= 0:
        return False
    return accept_per_s >= 0.9 * offered and e2e_per_s >= 0.9 * offered and lost == 0


def step_for_headline(
    steps: Sequence[tuple[float | None, bool]], wanted: float = 1000.0
) -> int | None:
    """Index of the step whose p99 the last line reports: the ``wanted`` step when it was held,
    else the highest offered step that was held, else the lowest offered step."""
    offered = [(i, rate) for i, (rate, _) in enumerate(steps) if rate is not None]
    if not offered:
        return None
    for i, rate in offered:
        if rate == wanted and steps[i][1]:
            return i
    held_steps = [(rate, i) for i, rate in offered if steps[i][1]]
    if held_steps:
        return max(held_steps)[1]
    return min((rate, i) for i, rate in offered)[1]


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    """A plain text table, columns right-aligned except the first."""
    cells = [[str(h) for h in headers], *[[_cell(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for n, row in enumerate(cells):
        parts = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        lines.append("  ".join(parts).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, Quantile):
        return value.text()
    if isinstance(value, float):
        if value == 0 or abs(value) >= 100:
            return f"{value:.0f}"
        if abs(value) >= 1:
            return f"{value:.1f}"
        return f"{value:.3f}"
    return str(value)
