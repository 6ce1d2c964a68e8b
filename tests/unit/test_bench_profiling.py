"""The bench's py-spy profiles: collapsed stacks read into own and total shares, and py-spy
itself attaching to a running process (or saying why it cannot)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.bench import profiling
from tests.bench.profiling import Frame, parse_collapsed, shares, short_frame

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
    assert profile.by_total == [
        Frame("<module> (services/intake/app.py:1)", 0.0, 1.0),
        Frame("walk (shared/text.py:5)", 0.6, 0.6),
        Frame("handle (shared/batch.py:40)", 0.1, 0.4),
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
