"""``python -m tools.lockcheck``: do the lock files pin what pyproject.toml pins?

``requirements-dev.lock`` (every dependency of the project and its dev tools, direct and
indirect, with hashes) is what ``make setup`` installs; ``requirements.lock`` (the services'
dependencies only) is what the image installs. ``make lock`` regenerates both from
pyproject.toml. Standard library only: ``make setup`` runs it before anything is installed.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEV_LOCK = REPO / "requirements-dev.lock"
RUNTIME_LOCK = REPO / "requirements.lock"

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;\\]+)")


def normalise(name: str) -> str:
    """A distribution name in its canonical form (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_pins(lines: list[str]) -> dict[str, str]:
    """``name == version`` requirements, by canonical name (extras and markers dropped)."""
    pins: dict[str, str] = {}
    for line in lines:
        match = _PIN.match(line.strip())
        if match:
            pins[normalise(match.group(1))] = match.group(3)
    return pins


def project_pins(pyproject: Path, *, extras: tuple[str, ...] = ("dev",)) -> dict[str, str]:
    """The exact pins of pyproject.toml: the dependencies, and those of ``extras``."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    wanted: list[str] = list(project.get("dependencies", []))
    for extra in extras:
        wanted += project.get("optional-dependencies", {}).get(extra, [])
    unpinned = [req for req in wanted if "==" not in req]
    if unpinned:
        raise ValueError(f"pyproject.toml: not pinned exactly: {unpinned}")
    return parse_pins(wanted)


def lock_pins(lock: Path) -> dict[str, str]:
    return parse_pins(lock.read_text(encoding="utf-8").splitlines())


def mismatches(wanted: dict[str, str], locked: dict[str, str]) -> list[str]:
    """What the lock lacks or pins otherwise, one line each."""
    out = []
    for name, version in sorted(wanted.items()):
        have = locked.get(name)
        if have != version:
            out.append(f"{name}=={version} (lock: {'missing' if have is None else have})")
    return out


def problems(repo: Path = REPO) -> list[str]:
    """Every way the two lock files disagree with pyproject.toml or with each other."""
    pyproject = repo / "pyproject.toml"
    dev, runtime = repo / DEV_LOCK.name, repo / RUNTIME_LOCK.name
    for lock in (dev, runtime):
        if not lock.exists():
            return [f"{lock.name} is missing"]
    dev_pins, runtime_pins = lock_pins(dev), lock_pins(runtime)
    services_only = project_pins(pyproject, extras=())
    out = [f"{dev.name}: {m}" for m in mismatches(project_pins(pyproject), dev_pins)]
    out += [f"{runtime.name}: {m}" for m in mismatches(services_only, runtime_pins)]
    # The image runs what the tests ran: every runtime pin is the dev lock's.
    out += [f"{runtime.name}: {m} in {dev.name}" for m in mismatches(runtime_pins, dev_pins)]
    return out


def main() -> int:
    found = problems()
    for line in found:
        print(f"[lock] {line}", file=sys.stderr)
    if found:
        print("[lock] the lock files differ from pyproject.toml: run `make lock`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
