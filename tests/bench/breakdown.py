"""Where a step's time went: the database time per request by service, command and collection
(from the services' ``cityhelp_db_command_seconds``), and the py-spy profile of the stage that
used the most CPU in the profiled step."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tests.bench.profiling import RATE, profile_lines
from tests.bench.stats import table
from tests.bench.steps import StepResult
from tests.support.services import SERVICES


def db_time_lines(step: StepResult, top: int = 12) -> list[str]:
    """The step's database time per request, biggest first, and each service's sum."""
    rows = step.db_time
    out = [
        f"Database time per request, step {step.label} ({step.decided} decided"
        f"{'' if step.drained else ', not drained'}; load average {step.load_average[0]:.1f};"
        " biggest first)"
    ]
    if not rows:
        return [*out, "  no database commands counted"]
    out += table(
        ["service", "command", "collection", "ms/request", "calls/request", "ms/call"],
        [
            [r.service, r.command, r.collection, r.ms_per_request, r.calls_per_request, r.mean_ms]
            for r in rows[:top]
        ],
    )
    if len(rows) > top:
        out.append(f"  ... {len(rows) - top} more rows in results.json")
    by_service: dict[str, float] = {}
    for r in rows:
        by_service[r.service] = by_service.get(r.service, 0.0) + r.ms_per_request
    ranked = sorted(by_service.items(), key=lambda x: -x[1])
    out.append(
        "  ms/request by service: "
        + ", ".join(f"{n} {ms:.2f}" for n, ms in ranked)
        + f"; all {sum(by_service.values()):.2f}"
    )
    return out


def profiled_step(steps: Sequence[StepResult]) -> StepResult | None:
    """The step py-spy sampled (``--profile``)."""
    return next((s for s in steps if s.profiles or s.profile_errors), None)


def slowest_stage(step: StepResult) -> str | None:
    """The service that used the most CPU seconds in the step."""
    used = [(step.cpu_s[n], n) for n in SERVICES if step.cpu_s.get(n) is not None]
    return max(used)[1] if used else None


def profile_section(step: StepResult, where: object) -> list[str]:
    """The slowest stage's top frames, and why any service has no profile."""
    stage = slowest_stage(step)
    cpu = ", ".join(f"{n} {step.cpu_s[n]:.1f}" for n in SERVICES if n in step.cpu_s)
    out = [
        f"Profile of the slowest stage in step {step.label}, by CPU seconds ({cpu}; load average"
        f" {step.load_average[0]:.1f}); py-spy, {RATE} samples/s, files in {where}"
    ]
    profile = step.profiles.get(stage) if stage else None
    if stage is not None and profile is not None:
        out.append(
            f"{stage}: {profile.samples} samples not idle ({profile.samples / RATE:.1f} s, against"
            f" {step.cpu_s[stage]:.1f} CPU s from /proc: the rest runnable, waiting for a core);"
            " shares of those samples. Runner.run's own share is uvloop's event loop, in C."
        )
        out += profile_lines(profile)
    for name, error in step.profile_errors.items():
        out.append(f"no profile of {name}: {error}")
    return out


def profile_json(steps: Sequence[StepResult], where: object) -> dict[str, Any] | None:
    """Which step and stage were profiled, where the files are, and why any is missing (the
    frames themselves are in the step's ``profiles``)."""
    step = profiled_step(steps)
    if step is None:
        return None
    return {
        "step": step.label,
        "dir": where,
        "rate": RATE,
        "slowest_stage": slowest_stage(step),
        "errors": step.profile_errors,
    }
