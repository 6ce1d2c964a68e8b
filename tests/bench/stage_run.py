"""One stage alone, draining a backlog: what ``tests.bench.notify_stage`` and
``tests.bench.route_stage`` share. Publish the records, wait until the stage has finished every
one (its ``cityhelp_messages_processed_total``), then read its CPU seconds from /proc, its
database write commands from its /metrics and the documents its database gained."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.bench import profiling
from tests.bench.backlog import produce_all
from tests.bench.procs import document_counts, read_proc, stack_pids
from tests.bench.stats import db_write_commands, db_writes, delta, metric_samples
from tests.support.services import REPO, ServiceSet

# A record as the producer takes it: topic, value, key, headers.
Record = tuple[str, bytes, bytes, list[tuple[str, bytes]]]


@dataclass(frozen=True)
class Drained:
    """What one drain cost the stage."""

    records: int
    finished: float
    seconds: float
    cpu_s: float
    writes: dict[str, float]
    inserted: dict[str, int]
    # The database server's CPU seconds meanwhile (all its clients'), when its pid is known.
    db_cpu_s: float | None = None
    # The stage's peak resident set (VmHWM, MB) when it had finished.
    rss_peak_mb: float | None = None

    def figures(self, requests: int) -> str:
        """The per-request figures every stage bench prints on its last line."""
        written = db_writes(self.writes, self.inserted)
        db_cpu = (
            ""
            if self.db_cpu_s is None
            else f" db_cpu_ms_per_request={self.db_cpu_s * 1000 / requests:.2f}"
        )
        return (
            f" requests={requests} records={self.finished:.0f}"
            f" records_per_s={self.finished / self.seconds:.0f}"
            f" cpu_ms_per_request={self.cpu_s * 1000 / requests:.2f}"
            f" cpu_ms_per_record={self.cpu_s * 1000 / max(self.finished, 1):.3f}"
            f" writes_per_request={written / requests:.2f}"
            f" write_commands_per_request={sum(self.writes.values()) / requests:.3f}"
            + db_cpu
            + ("" if self.rss_peak_mb is None else f" rss_peak_mb={self.rss_peak_mb:.0f}")
        )


async def stage_metrics(services: ServiceSet, stage: str) -> str:
    """The stage's /metrics (it answers late while it plans a large batch)."""
    async with httpx.AsyncClient(timeout=60) as http:
        return (await http.get(f"{services.url(stage)}/metrics")).text


def finished(text: str, stage: str) -> float:
    """Records the stage finished (ok or dead-lettered), over every topic."""
    return sum(
        v
        for labels, v in metric_samples(text, "cityhelp_messages_processed_total")
        if labels.get("service") == stage
    )


def cpu_of(services: ServiceSet, stage: str) -> float:
    figures = read_proc(services.procs[stage].pid)
    return figures.cpu_s if figures else 0.0


def db_cpu() -> float | None:
    """The database server's CPU seconds so far, from the pid file of the stack in
    ``CITYHELP_RUN_DIR`` (None when that stack is not this machine's)."""
    pid = stack_pids(Path(os.environ.get("CITYHELP_RUN_DIR", REPO / ".run"))).get("ferretdb")
    figures = read_proc(pid) if pid is not None else None
    return figures.cpu_s if figures else None


async def drain(
    services: ServiceSet,
    stage: str,
    records: Iterable[Record],
    *,
    bootstrap: str,
    uri: str,
    timeout: float,
    say: Callable[[str], None],
    profile_path: str | None = None,
) -> Drained:
    """Publish ``records`` and measure the stage until it has finished them all."""
    before = await stage_metrics(services, stage)
    docs_before = await document_counts(uri, services.database)
    cpu_before = cpu_of(services, stage)
    db_before = db_cpu()
    recordings = {}
    if profile_path:
        recordings = profiling.start({stage: (Path(profile_path), services.procs[stage].pid)})
    started = time.monotonic()
    published = await produce_all(bootstrap, records)
    say(f"published {published} records in {time.monotonic() - started:.1f}s")
    done = finished(before, stage)
    last = time.monotonic()
    while True:
        text = await stage_metrics(services, stage)
        count = finished(text, stage) - done
        waited = time.monotonic() - started
        if count >= published:
            break
        if waited > timeout:
            say(f"stopped waiting after {waited:.0f}s: {count:.0f}/{published} records")
            break
        if time.monotonic() - last >= 5:
            say(f"{count:.0f}/{published} records, {waited:.0f}s")
            last = time.monotonic()
        await asyncio.sleep(0.5)
    seconds = time.monotonic() - started
    cpu = cpu_of(services, stage) - cpu_before
    figures = read_proc(services.procs[stage].pid)
    db_after = db_cpu()
    if recordings:
        profiles, errors = profiling.finish(recordings, repo=REPO)
        for error in errors.values():
            say(f"no profile: {error}")
        for line in profiling.profile_lines(profiles[stage]) if stage in profiles else ():
            say(line)
    writes = delta(db_write_commands(text), db_write_commands(before))
    docs_after = await document_counts(uri, services.database)
    inserted = {k: n - docs_before.get(k, 0) for k, n in docs_after.items()}
    say(f"write commands: {json.dumps(writes)}")
    say(f"documents inserted: {json.dumps({k: v for k, v in inserted.items() if v})}")
    db_spent = None if db_before is None or db_after is None else db_after - db_before
    rss = figures.rss_peak_mb if figures else None
    return Drained(published, count, seconds, cpu, writes, inserted, db_spent, rss)
