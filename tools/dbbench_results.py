"""The database benchmark's pure parts: documents of a given size, percentiles, the result of a
phase and the Markdown tables of one run or several (``python -m tools.dbbench``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import bson

Document = dict[str, Any]

DOC_BYTES = 1024


def make_doc(key: str, seq: int, size: int = DOC_BYTES) -> Document:
    """A document shaped like a stage's record, padded so that its BSON is ``size`` bytes."""
    doc: Document = {
        "_id": key,
        "seq": seq,
        "kind": "bench",
        "status": "submitted",
        "district": "jinshui",
        "contact": {"name": "bench", "phone": "+8613800138000"},
        "timeline": [{"at": seq, "event": "submitted"}],
        "payload": "",
    }
    missing = size - len(bson.encode(doc))
    doc["payload"] = "x" * max(missing, 0)
    return doc


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by nearest rank; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


@dataclass
class PhaseResult:
    """One phase: how many calls and documents in how long, and how it ended."""

    name: str
    unit: str = "docs"
    calls: int = 0
    docs: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    hung: bool = False
    errors: int = 0
    note: str = ""

    @property
    def rate(self) -> float:
        return self.docs / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> Document:
        return {
            "name": self.name,
            "unit": self.unit,
            "calls": self.calls,
            "docs": self.docs,
            "seconds": round(self.seconds, 3),
            "rate": round(self.rate, 1),
            "p50_ms": round(percentile(self.latencies, 50) * 1000, 2),
            "p99_ms": round(percentile(self.latencies, 99) * 1000, 2),
            "hung": self.hung,
            "errors": self.errors,
            "note": self.note,
        }


def rate_cell(summary: Document) -> str:
    """A rate as a table shows it: ``hung`` when the phase hung before any call finished."""
    if summary["hung"] and summary["calls"] == 0:
        return "hung"
    text = f"{summary['rate']:,.0f}"
    if summary["hung"]:
        text += " (then hung)"
    elif summary["errors"]:
        text += f" ({summary['errors']} errors)"
    return text


def format_table(summaries: Sequence[Document]) -> str:
    """A plain-text table of one run's phases."""
    header = ("phase", "calls", "docs", "s", "rate/s", "p50 ms", "p99 ms", "note")
    rows = [
        (
            s["name"],
            str(s["calls"]),
            str(s["docs"]),
            f"{s['seconds']:.1f}",
            f"{rate_cell(s)} {s['unit']}",
            f"{s['p50_ms']:.1f}",
            f"{s['p99_ms']:.1f}",
            s["note"],
        )
        for s in summaries
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    head = "  ".join(c.ljust(w) for c, w in zip(header, widths, strict=True)).rstrip()
    return "\n".join([head, "-" * len(head), *lines])


def format_comparison(runs: Sequence[Document]) -> str:
    """A Markdown table: one row per phase, one column (rate/s) per run, in the runs' order."""
    names: list[str] = []
    units: dict[str, str] = {}
    for run in runs:
        for s in run["results"]:
            if s["name"] not in units:
                names.append(s["name"])
                units[s["name"]] = s["unit"]
    header = "| phase | " + " | ".join(run["label"] for run in runs) + " |"
    rule = "|---|" + "---:|" * len(runs)
    rows = []
    for name in names:
        cells = []
        for run in runs:
            found = [s for s in run["results"] if s["name"] == name]
            cells.append(rate_cell(found[0]) if found else "-")
        rows.append(f"| {name} ({units[name]}/s) | " + " | ".join(cells) + " |")
    return "\n".join([header, rule, *rows])
