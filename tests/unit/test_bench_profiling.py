"""The bench's py-spy profiles: collapsed stacks read into own and total shares, and py-spy
itself attaching to a running process (or saying why it cannot)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.bench import profiling
from tests.bench.breakdown import db_time_lines, profile_section
from tests.bench.load import LoadResult
from tests.bench.profiling import Frame, parse_collapsed, shares, short_frame
from tests.bench.stats import DbTime
from tests.bench.steps import StepResult
from tests.bench.watch import Track, outcomes

pytestmark = pytest.mark.unit

REPO = Path("/srv/cityhelp")
SITE = "/srv/cityhelp/.venv/lib/python3.11/site-packages"
COLLAPSED = (
    # --subprocesses: each stack starts with its process; intake's worker adds to intake.
    'process 10:"python -m services.intake";<module> (/srv/cityhelp/services/intake/app.py:1);'
    "run (/usr/lib/python3.11/asyncio/runners.py:86);"
    f"handle (/srv/cityhelp/shared/batch.py:40);validate ({SITE}/pydantic/main.py:600) 30\n"
    'process 10:"python -m services.intake";process 11:"python -m services.intake";'
    "<module> (/srv/cityhelp/services/intake/app.py:1);"
    "run (/usr/lib/python3.11/asyncio/runners.py:86);"
    "handle (/srv/cityhelp/shared/batch.py:40) 10\n"
    # recursion: walk is on the stack twice in one sample, and counts once
    'process 10:"python -m services.intake";<module> (/srv/cityhelp/services/intake/app.py:1);'
    "walk (/srv/cityhelp/shared/text.py:5);walk (/srv/cityhelp/shared/text.py:5) 60\n"
    "not a stack line\n"
)


def test_collapsed_stacks_drop_the_process_frames() -> None:
    stacks = parse_collapsed(COLLAPSED)
    assert sum(stacks.values()) == 100
    assert all(not f.startswith("process ") for stack in stacks for f in stack)
    assert stacks[("<module> (/srv/cityhelp/services/intake/app.py:1)",
                   "run (/usr/lib/python3.11/asyncio/runners.py:86)",
                   "handle (/srv/cityhelp/shared/batch.py:40)")] == 10  # fmt: skip


def test_frames_by_own_and_total_share() -> None:
    profile = shares(parse_collapsed(COLLAPSED), top=3, repo=REPO)
    assert profile.samples == 100
    assert profile.by_own == [
        Frame("walk (shared/text.py:5)", 0.6, 0.6),
        Frame("validate (pydantic/main.py:600)", 0.3, 0.3),
        Frame("handle (shared/batch.py:40)", 0.1, 0.4),
    ]
    # <module> is on every stack and never runs itself: the entry chain, listed apart.
    assert profile.entry == ["<module> (services/intake/app.py:1)"]
    assert profile.by_total == [
        Frame("walk (shared/text.py:5)", 0.6, 0.6),
        Frame("handle (shared/batch.py:40)", 0.1, 0.4),
        Frame("run (asyncio/runners.py:86)", 0.0, 0.4),
    ]
    assert shares({}).samples == 0
    assert short_frame("f (/usr/lib/python3.11/json/decoder.py:3)") == "f (json/decoder.py:3)"


def test_py_spy_samples_a_running_process(tmp_path: Path) -> None:
    busy = "def spin():\n    while True:\n        sum(range(1000))\nspin()\n"
    proc = subprocess.Popen([sys.executable, "-c", busy])
    try:
        recordings = profiling.start({"spin": (tmp_path / "spin.txt", proc.pid)}, settle_s=2.0)
        profiles, errors = profiling.finish(recordings)
    finally:
        proc.kill()
        proc.wait()
    assert errors == {}
    assert profiles["spin"].samples > 0
    assert any(f.name.startswith("spin (") for f in profiles["spin"].by_total)


def test_py_spy_that_cannot_attach_says_how_to_allow_it(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # reaped: its pid names no process now
    recordings = profiling.start({"gone": (tmp_path / "gone.txt", proc.pid)}, settle_s=2.0)
    errors = profiling.stop(recordings)
    assert "could not attach to gone" in errors["gone"]
    assert "ptrace" in errors["gone"]
    assert not (tmp_path / "gone.txt").exists()


def a_step(cpu_s: dict[str, float], **fields: object) -> StepResult:
    tracks = {"r1": Track(submit_ms=1000.0, dispatch_ms=1050.0)}
    return StepResult(
        label="max",
        offered_per_s=None,
        seconds=20.0,
        load=LoadResult(None, 20.0, 2, 64),
        outcomes=outcomes(tracks, None, 2000.0),
        drain_s=3.0,
        drained=True,
        write_commands={},
        inserted_documents={},
        accepted_series=[],
        dispatched_series=[],
        dispatch_ms=[50.0],
        cpu_s=cpu_s,
        per_topic={},
        load_average=(3.5, 2.0, 1.0),
        **fields,  # type: ignore[arg-type]
    )


def test_the_report_shows_the_stage_that_used_the_most_cpu() -> None:
    verify = shares(parse_collapsed(COLLAPSED), repo=REPO)
    route = shares(parse_collapsed("main (r.py:1);plan (route/plans.py:9) 5\n"))
    step = a_step(
        {"intake": 2.0, "verify": 9.5, "route": 4.0, "notify": 1.0, "kafka": 30.0},
        profiles={"verify": verify, "route": route},
        profile_errors={"notify": "py-spy could not attach to notify (…); ptrace …"},
    )
    lines = profile_section(step, "bench/profile")
    text = "\n".join(lines)
    assert "verify: 100 samples not idle (2.0 s, against 9.5 CPU s" in text
    assert ["walk", "(shared/text.py:5)", "60.0%", "60.0%"] in [line.split() for line in lines]
    assert "plan (route/plans.py:9)" not in text  # not the slowest stage
    assert "no profile of notify: py-spy could not attach" in text
    assert "load average 3.5" in text


def test_the_report_lists_database_time_biggest_first_with_each_services_sum() -> None:
    rows = [
        DbTime("verify", "find", "requests", 6.0, 3.0, 2.0),
        DbTime("route", "insert", "legs", 2.5, 1.0, 2.5),
        DbTime("verify", "update", "checks", 1.0, 0.5, 2.0),
    ]
    text = db_time_lines(a_step({}, db_time=rows), top=2)
    assert text[0].startswith("Database time per request, step max (1 decided;")
    assert text[3].split() == ["verify", "find", "requests", "6.0", "3.0", "2.0"]
    assert text[4].split() == ["route", "insert", "legs", "2.5", "1.0", "2.5"]
    assert text[5] == "  ... 1 more rows in results.json"
    assert text[6] == "  ms/request by service: verify 7.00, route 2.50; all 9.50"
