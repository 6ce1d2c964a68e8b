"""Crash points: the setting's format, and a point ends the process on its n-th hit only."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from shared import faults
from shared.settings import ServiceSettings

pytestmark = pytest.mark.unit


def test_parse_names_and_hit_numbers() -> None:
    assert faults.parse("") == {}
    assert faults.parse("route.after_publish:3, verify.after_store") == {
        "route.after_publish": 3,
        "verify.after_store": 1,
    }


@pytest.mark.parametrize("spec", ["route", "route.after_publish:x", "a.b:0", "Route.X:1", "a.b.c"])
def test_malformed_lists_are_refused(spec: str) -> None:
    with pytest.raises(ValueError, match="crash point"):
        faults.parse(spec)


def test_the_setting_is_validated_at_start() -> None:
    settings = ServiceSettings(CITYHELP_CRASH_POINTS="notify.after_send:2")
    assert settings.crash_points == "notify.after_send:2"
    with pytest.raises(ValidationError):
        ServiceSettings(CITYHELP_CRASH_POINTS="notify.after_send:two")


def test_unarmed_points_do_nothing() -> None:
    faults.configure("")
    for _ in range(3):
        faults.crash_point("route.after_publish")
    assert faults.armed() == {}


SCRIPT = """
from shared import faults
faults.configure({"x.point": 3})
for i in range(1, 6):
    faults.crash_point("y.other")
    print(i, flush=True)
    faults.crash_point("x.point")
"""


def test_an_armed_point_exits_137_on_its_nth_hit() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == faults.EXIT_CODE
    assert done.stdout.split() == ["1", "2", "3"]
    assert "crash point x.point reached (hit 3)" in done.stderr
