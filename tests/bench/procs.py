"""Per-process figures from /proc (peak RSS, CPU seconds), the services' database command counters
(calls and seconds) from their /metrics, and document counts of a service set's database."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from pymongo import AsyncMongoClient

from tests.bench.stats import CommandTotals, db_command_totals, write_counts
from tests.support.services import SERVICES, ServiceSet

TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class ProcFigures:
    """One process (with its descendants): peak resident set (VmHWM) and CPU seconds (user +
    system) so far."""

    pid: int
    rss_peak_mb: float
    cpu_s: float


def parse_stat_cpu(stat: str) -> float:
    """utime + stime + cutime + cstime (its own and its reaped children's CPU) in seconds from
    a /proc/<pid>/stat line (the name in parentheses may hold spaces, so fields are counted
    after its closing parenthesis)."""
    fields = stat[stat.rindex(")") + 2 :].split()
    # fields[0] is the state (field 3); utime, stime, cutime, cstime are fields 14 to 17.
    return sum(int(f) for f in fields[11:15]) / TICKS


def parse_ppid(stat: str) -> int:
    return int(stat[stat.rindex(")") + 2 :].split()[1])


def parse_vm_hwm_mb(status: str) -> float:
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def process_tree(pid: int) -> list[int]:
    """``pid`` and its live descendants (a service that runs worker processes)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = parse_ppid((entry / "stat").read_text())
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, ()))
    return tree


def read_proc(pid: int) -> ProcFigures | None:
    """One process and its descendants: CPU summed; peak RSS summed over the processes (each
    one's own peak, so at most what they held at once)."""
    rss = cpu = 0.0
    found = False
    for member in process_tree(pid):
        try:
            stat = Path(f"/proc/{member}/stat").read_text()
            status = Path(f"/proc/{member}/status").read_text()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        found = True
        rss += parse_vm_hwm_mb(status)
        cpu += parse_stat_cpu(stat)
    return ProcFigures(pid, rss, cpu) if found else None


def pid_from_file(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def stack_pids(run_dir: Path) -> dict[str, int]:
    """Kafka's and FerretDB's pids, from the pid files deploy/local/stack.sh writes."""
    pids = {}
    for name in ("kafka", "ferretdb"):
        pid = pid_from_file(run_dir / f"{name}.pid")
        if pid is not None:
            pids[name] = pid
    return pids


def service_figures(services: ServiceSet) -> dict[str, ProcFigures]:
    figures = {}
    for name, proc in services.procs.items():
        if proc.poll() is None and (f := read_proc(proc.pid)) is not None:
            figures[name] = f
    return figures


async def db_totals(services: ServiceSet) -> dict[str, dict[tuple[str, str], tuple[float, float]]]:
    """Each service's database seconds and calls so far, by (command, collection)."""
    totals = {}
    async with httpx.AsyncClient(timeout=10) as http:
        for service in SERVICES:
            try:
                response = await http.get(f"{services.url(service)}/metrics")
            except httpx.HTTPError:
                continue
            totals[service] = db_command_totals(response.text)
    return totals


def write_commands(totals: Mapping[str, CommandTotals]) -> dict[str, float]:
    """Database write commands, summed over the services, by command:collection."""
    total: dict[str, float] = {}
    for service in totals.values():
        for key, value in write_counts(service).items():
            total[key] = total.get(key, 0.0) + value
    return total


async def document_counts(uri: str, database: str) -> dict[str, int]:
    """Documents per collection of one database (what the stages inserted)."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri, timeoutMS=120_000)
    try:
        db = client[database]
        names = await db.list_collection_names()
        counts = await asyncio.gather(*(db[n].estimated_document_count() for n in names))
        return dict(zip(names, counts, strict=True))
    finally:
        await client.close()
