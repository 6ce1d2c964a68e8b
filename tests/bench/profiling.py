"""Sampled profiles of running services with py-spy (``make bench --profile DIR``,
``python -m tests.bench.notify_stage --profile FILE``).

``py-spy record --format raw`` writes collapsed stacks: one line per distinct stack, its frames
from the root down joined by ``;``, then the number of samples that caught it. A frame's own
share is the part of the samples in which it was running itself (the stack's last frame), its
total share the part in which it was anywhere on the stack. py-spy leaves out samples of a
thread waiting idle (in epoll, a lock, a sleep), so the shares are of the time on the CPU.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.bench.stats import table

RATE = 50  # samples per second: enough over tens of seconds, little load on the services
PTRACE_FIX = (
    "py-spy reads a process through ptrace: run the bench as root or as the services' own user"
    " with ptrace allowed (sysctl kernel.yama.ptrace_scope=0; in a container, start it with"
    " --cap-add SYS_PTRACE)"
)
_PROCESS = re.compile(r"^process \d+:")  # --subprocesses: the root frame of each process
_PREFIX = re.compile(r"\((?:[^()]*/site-packages/|[^()]*/lib/python3\.\d+/)")


def py_spy() -> str:
    return shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))


@dataclass
class Recording:
    """One py-spy run sampling a process (and its worker processes) into ``path``."""

    path: Path
    proc: subprocess.Popen[bytes] | None
    log: Path
    error: str | None = None


def start(
    targets: Mapping[str, tuple[Path, int]], *, rate: int = RATE, settle_s: float = 1.0
) -> dict[str, Recording]:
    """py-spy recording each named ``(path, pid)``; one that cannot attach (py-spy exits at
    once) has an ``error`` that says why and how to allow it."""
    recordings = {}
    for name, (path, pid) in targets.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        log = path.with_suffix(".log")
        command = [py_spy(), "record", "--pid", str(pid), "--format", "raw", "--rate", str(rate)]
        command += ["--function", "--subprocesses", "-o", str(path)]
        try:
            with log.open("wb") as out:
                proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        except OSError as exc:
            recordings[name] = Recording(path, None, log, f"py-spy could not run ({exc})")
            continue
        recordings[name] = Recording(path, proc, log)
    time.sleep(settle_s)
    for name, recording in recordings.items():
        if recording.proc is not None and recording.proc.poll() is not None:
            recording.error = (
                f"py-spy could not attach to {name} (pid {targets[name][1]}:"
                f" {_reason(recording.log)}); {PTRACE_FIX}"
            )
    return recordings


def stop(recordings: Mapping[str, Recording], timeout: float = 60.0) -> dict[str, str]:
    """Stop sampling (SIGINT: py-spy writes its file and exits); why a profile is missing, by
    name (none when every file is there)."""
    for recording in recordings.values():
        if recording.proc is not None and recording.proc.poll() is None:
            recording.proc.send_signal(signal.SIGINT)
    errors = {}
    for name, recording in recordings.items():
        if recording.proc is not None:
            try:
                recording.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                recording.proc.kill()
                recording.proc.wait()
        if recording.error is None and not recording.path.exists():
            recording.error = f"py-spy wrote no profile of {name} ({_reason(recording.log)})"
        if recording.error is not None:
            errors[name] = recording.error
    return errors


def finish(
    recordings: Mapping[str, Recording], top: int = 20, repo: Path | None = None
) -> tuple[dict[str, Profile], dict[str, str]]:
    """Stop every recording; the profiles read, and why any is missing."""
    errors = stop(recordings)
    profiles = {
        name: read_profile(r.path, top, repo)
        for name, r in recordings.items()
        if name not in errors
    }
    return profiles, errors


def _reason(log: Path) -> str:
    """py-spy's error line (before its backtrace), else its last line."""
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines()]
    except OSError:
        return "no output"
    lines = [line for line in lines if line]
    error = next((line for line in lines if line.startswith("Error")), None)
    return (error or (lines[-1] if lines else "no output"))[:200]


def parse_collapsed(text: str) -> Counter[tuple[str, ...]]:
    """Samples per stack (frames from the root down) of py-spy's raw output; the root frames
    naming a process (``--subprocesses``) are dropped, so a service's worker processes add up."""
    stacks: Counter[tuple[str, ...]] = Counter()
    for line in text.splitlines():
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = tuple(f for f in stack.split(";") if f and not _PROCESS.match(f))
        if frames:
            stacks[frames] += int(count)
    return stacks


def short_frame(frame: str, repo: Path | None = None) -> str:
    """``function (file:line)`` with the file relative to the project, its site-packages or
    the standard library."""
    frame = _PREFIX.sub("(", frame)
    return frame.replace(f"({repo}/", "(") if repo is not None else frame


@dataclass(frozen=True)
class Frame:
    name: str
    own: float  # share of the samples running in it
    total: float  # share of the samples with it on the stack


@dataclass(frozen=True)
class Profile:
    samples: int
    by_own: list[Frame]
    by_total: list[Frame]  # below the entry chain
    entry: list[str]  # the frames every sample of the main thread passes through, running none


def shares(
    stacks: Mapping[tuple[str, ...], int], top: int = 20, repo: Path | None = None
) -> Profile:
    """The ``top`` frames by own share and by total share; by total share, the entry chain
    (``<module>``, ``serve``, the server's ``run``: on the stack of every sample of the main
    thread, never running themselves) is left out, listed apart."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for frames, count in stacks.items():
        names = [short_frame(f, repo) for f in frames]
        samples += count
        own[names[-1]] += count
        for name in set(names):  # a recursive frame counts once per sample
            total[name] += count
    if samples == 0:
        return Profile(0, [], [], [])
    widest = max(total.values())
    entry = {n for n, count in total.items() if count == widest and not own[n]}

    def frames_of(names: Iterable[tuple[str, int]]) -> list[Frame]:
        return [Frame(n, own[n] / samples, total[n] / samples) for n, _ in names]

    return Profile(
        samples=samples,
        by_own=frames_of(own.most_common(top)),
        by_total=frames_of(
            sorted(
                ((n, count) for n, count in total.items() if n not in entry),
                key=lambda x: (-x[1], -own[x[0]], x[0]),
            )[:top]
        ),
        entry=_in_stack_order(entry, stacks, repo),
    )


def _in_stack_order(
    names: set[str], stacks: Mapping[tuple[str, ...], int], repo: Path | None
) -> list[str]:
    """``names`` root first, as a stack that holds them all orders them."""
    for frames in stacks:
        shown = [short_frame(f, repo) for f in frames]
        if names <= set(shown):
            return [n for n in dict.fromkeys(shown) if n in names]
    return sorted(names)


def read_profile(path: Path, top: int = 20, repo: Path | None = None) -> Profile:
    return shares(parse_collapsed(path.read_text(errors="replace")), top, repo)


def profile_lines(profile: Profile, top: int = 12) -> list[str]:
    """Two short tables: the frames by own share, then by total share."""

    def rows(frames: list[Frame]) -> list[list[object]]:
        return [[f.name, f"{f.own:.1%}", f"{f.total:.1%}"] for f in frames[:top]]

    return [
        *table(["frame, by own share", "own", "total"], rows(profile.by_own)),
        "",
        "entry chain (on every sample of the main thread): " + " > ".join(profile.entry),
        "",
        *table(["frame, by total share", "own", "total"], rows(profile.by_total)),
    ]
