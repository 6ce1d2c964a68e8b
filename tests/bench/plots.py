"""PNG plots of a run: throughput over time per step, and the submit→dispatch latency
distribution (one cumulative curve per step, and the P1 requests under the backlog)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

if TYPE_CHECKING:
    from tests.bench.report import Run


def plot_throughput(run: Run, out_dir: Path) -> Path:
    path = out_dir / "throughput.png"
    steps = run.steps
    columns = min(3, max(1, len(steps)))
    rows = max(1, math.ceil(len(steps) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(5 * columns, 3.2 * rows), squeeze=False)
    for ax in axes.flat[len(steps) :]:
        ax.set_visible(False)
    for ax, step in zip(axes.flat, steps, strict=False):
        seconds = range(len(step.accepted_series))
        ax.plot(seconds, step.accepted_series, label="accepted/s (submitted topic)", lw=1)
        ax.plot(seconds, step.dispatched_series, label="dispatched/s (dispatch topics)", lw=1)
        if step.offered_per_s:
            ax.axhline(step.offered_per_s, color="grey", ls=":", lw=1, label="offered/s")
        ax.axvline(step.seconds, color="black", ls="--", lw=0.8)
        ax.set_title(f"{step.label}: load {step.seconds:.0f}s, then drain", fontsize=9)
        ax.set_xlabel("seconds from the step's start")
        ax.set_ylabel("requests/s")
        ax.grid(alpha=0.3)
    if steps:
        axes.flat[0].legend(fontsize=7)
    fig.suptitle("make bench: throughput over time", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_latency(run: Run, out_dir: Path) -> Path:
    path = out_dir / "latency.png"
    fig, ax = plt.subplots(figsize=(8, 4.5))
    series = [
        (
            f"{s.label} ({len(s.dispatch_ms)} of {s.outcomes.accepted})",
            s.dispatch_ms,
            s.outcomes.accepted,
        )
        for s in run.steps
    ]
    if run.backlog is not None:
        b = run.backlog
        label = f"P1 under {b.backlog} P3 ({len(b.p1_dispatch_ms)} of {b.p1.accepted})"
        series.append((label, b.p1_dispatch_ms, b.p1.accepted))
    drawn = 0
    for label, values, accepted in series:
        if not values:
            continue
        drawn += 1
        ordered = sorted(max(1.0, v) for v in values)
        # y: share of the step's accepted requests dispatched within x (undispatched never get
        # there, so a curve that stops below 1 shows what was left)
        total = max(len(values), accepted)
        ax.step(ordered, [(i + 1) / total for i in range(len(ordered))], where="post", label=label)
    ax.set_xscale("log")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("submit → dispatched (ms, log scale)")
    ax.set_ylabel("share of accepted requests")
    ax.set_title("make bench: submit→dispatch latency (cumulative)")
    ax.grid(alpha=0.3, which="both")
    if drawn:
        ax.legend(fontsize=7, loc="lower right")
    else:
        ax.text(0.5, 0.5, "nothing dispatched", transform=ax.transAxes, ha="center")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
