"""Team choice: the district's team with free capacity, else the least loaded, else fallback."""

from __future__ import annotations

from typing import Any

import pytest

from services.route.teams import choose_team, load_directory, other_team, parse_directory
from shared.settings import CONFIG_DIR

pytestmark = pytest.mark.unit


def directory(extra: list[dict[str, Any]] | None = None) -> Any:
    return parse_directory(
        {
            "version": "t",
            "fallback": {
                "police": "police-duty",
                "community": "community-duty",
                "medical": "medical-duty",
                "command": "command-centre",
            },
            "teams": [
                {"id": "police-duty", "department": "police", "capacity": 100},
                {"id": "community-duty", "department": "community", "capacity": 100},
                {"id": "medical-duty", "department": "medical", "capacity": 100},
                {"id": "command-centre", "department": "command", "capacity": 100},
                {
                    "id": "med-jinshui-1",
                    "department": "medical",
                    "district": "jinshui",
                    "capacity": 2,
                },
                {
                    "id": "med-jinshui-2",
                    "department": "medical",
                    "district": "jinshui",
                    "capacity": 2,
                },
                {"id": "med-erqi-1", "department": "medical", "district": "erqi", "capacity": 4},
                {"id": "med-erqi-2", "department": "medical", "district": "erqi", "capacity": 4},
                *(extra or []),
            ],
        }
    )


def test_a_team_in_the_district_with_free_capacity() -> None:
    team = choose_team(directory(), "medical", "jinshui", {"med-jinshui-1": 1})
    assert team.id == "med-jinshui-2"  # both free: the less loaded one
    team = choose_team(directory(), "medical", "Jinshui", {"med-jinshui-1": 0, "med-jinshui-2": 1})
    assert team.id == "med-jinshui-1"


def test_a_full_district_goes_to_the_least_loaded_team_of_the_department() -> None:
    load = {"med-jinshui-1": 2, "med-jinshui-2": 2, "med-erqi-1": 3, "med-erqi-2": 1}
    assert choose_team(directory(), "medical", "jinshui", load).id == "med-erqi-2"


def test_no_free_team_goes_to_the_fallback() -> None:
    load = {"med-jinshui-1": 2, "med-jinshui-2": 2, "med-erqi-1": 4, "med-erqi-2": 4}
    assert choose_team(directory(), "medical", "jinshui", load).id == "medical-duty"
    # A department with no district teams at all.
    assert choose_team(directory(), "police", "jinshui", {}).id == "police-duty"


def test_another_team_for_a_rejected_leg() -> None:
    d = directory()
    other = other_team(d, "medical", "jinshui", {}, exclude={"med-jinshui-1"})
    assert other is not None
    assert other.id == "med-jinshui-2"
    # Nobody else free: the fallback is the other team; once it refused too, none is left.
    full = {"med-jinshui-2": 2, "med-erqi-1": 4, "med-erqi-2": 4}
    other = other_team(d, "medical", "jinshui", full, exclude={"med-jinshui-1"})
    assert other is not None
    assert other.id == "medical-duty"
    assert other_team(d, "police", None, {}, exclude={"police-duty"}) is None


def test_the_directory_needs_a_fallback_per_department() -> None:
    with pytest.raises(ValueError, match="fallback"):
        parse_directory(
            {
                "fallback": {"police": "p"},
                "teams": [{"id": "p", "department": "police", "capacity": 1}],
            }
        )


def test_the_shipped_directory_loads() -> None:
    d = load_directory(CONFIG_DIR / "teams.toml")
    assert {t.department for t in d.teams if t.fallback} == {
        "police",
        "community",
        "medical",
        "command",
    }
    assert choose_team(d, "medical", "jinshui", {}).district == "jinshui"
