"""The team directory and the choice of a team for a leg. Pure functions, no I/O."""

from __future__ import annotations

import tomllib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.route.domain import as_department, table_rows
from shared.topics import DEPARTMENTS, Department


@dataclass(frozen=True, slots=True)
class Team:
    id: str
    department: Department
    district: str | None
    capacity: int
    fallback: bool = False


@dataclass(frozen=True, slots=True)
class Directory:
    version: str
    teams: tuple[Team, ...]

    def fallback(self, department: Department) -> Team:
        for team in self.teams:
            if team.department == department and team.fallback:
                return team
        raise LookupError(f"no fallback team for {department}")


def parse_directory(data: Mapping[str, Any], *, source: str = "teams") -> Directory:
    """The team directory from parsed TOML; every department needs a fallback team."""
    fallback = {
        as_department(k, f"{source} [fallback]"): str(v)
        for k, v in data.get("fallback", {}).items()
    }
    teams: list[Team] = []
    for where, team_id, raw in table_rows(data, "teams", source):
        department = as_department(raw.get("department"), where)
        capacity = int(raw.get("capacity", 0))
        if capacity < 1:
            raise ValueError(f"{where}: capacity must be at least 1")
        district = raw.get("district")
        teams.append(
            Team(
                id=team_id,
                department=department,
                district=str(district).lower() if district else None,
                capacity=capacity,
                fallback=fallback.get(department) == team_id,
            )
        )
    seen = {team.id for team in teams}
    for department in DEPARTMENTS:
        if department not in fallback:
            raise ValueError(f"{source}: no fallback team for {department}")
        if fallback[department] not in seen:
            raise ValueError(f"{source}: fallback {fallback[department]!r} is not a team")
    return Directory(version=str(data.get("version", "")), teams=tuple(teams))


def load_directory(path: Path) -> Directory:
    return parse_directory(tomllib.loads(path.read_text(encoding="utf-8")), source=str(path))


def choose_team(
    directory: Directory,
    department: Department,
    district: str | None,
    load: Mapping[str, int],
    *,
    exclude: Collection[str] = (),
) -> Team:
    """A team in the district with free capacity, else the least loaded team of the department
    with free capacity, else the department's fallback (which takes the leg even when full).

    ``load`` is the number of open legs per team id; ``exclude`` the teams that already
    rejected this leg. Ties go to the lower load ratio, then the team id, so the choice is
    deterministic.
    """
    candidates = [
        t
        for t in directory.teams
        if t.department == department and not t.fallback and t.id not in exclude
    ]
    free = [t for t in candidates if load.get(t.id, 0) < t.capacity]
    local = [t for t in free if district and t.district == district.lower()]
    for pool in (local, free):
        if pool:
            return _least_loaded(pool, load)
    return directory.fallback(department)


def other_team(
    directory: Directory,
    department: Department,
    district: str | None,
    load: Mapping[str, int],
    *,
    exclude: Collection[str],
) -> Team | None:
    """A different team of the department for a rejected leg, or None when none is left."""
    team = choose_team(directory, department, district, load, exclude=exclude)
    return None if team.id in exclude else team


def _least_loaded(pool: Sequence[Team], load: Mapping[str, int]) -> Team:
    return min(pool, key=lambda t: (load.get(t.id, 0) / t.capacity, load.get(t.id, 0), t.id))
