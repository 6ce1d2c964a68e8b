"""``python -m tools.contracts`` (``make contracts``): builds the four services' HTTP apps with
default settings and no topic prefix (never started) and writes the published contract under
``contracts/`` from them (:mod:`shared.contracts`); ``--check`` only compares."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from services.intake.app import build_app as build_intake
from services.intake.settings import IntakeSettings
from services.notify.app import build_app as build_notify
from services.notify.settings import NotifySettings
from services.route.app import build_app as build_route
from services.route.settings import RouteSettings
from services.verify.app import build_app as build_verify
from services.verify.settings import VerifySettings
from shared import contracts


def build_apps() -> dict[str, Any]:
    """The four HTTP apps, built with default settings and no topic prefix; never started."""
    return {
        "intake": build_intake(IntakeSettings(TOPIC_PREFIX=""), create_topics=False),
        "verify": build_verify(VerifySettings(TOPIC_PREFIX=""), create_topics=False),
        "route": build_route(RouteSettings(TOPIC_PREFIX=""), create_topics=False),
        "notify": build_notify(NotifySettings(TOPIC_PREFIX=""), create_topics=False),
    }


def documents() -> dict[str, str]:
    """Every file the code generates: path relative to ``contracts/`` → its text."""
    return contracts.documents(build_apps())


def differences(root: Path = contracts.CONTRACTS_DIR) -> list[str]:
    """Files under ``root`` that differ from the code: changed, missing or no longer generated."""
    return contracts.differences(documents(), root)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 on a change")
    args = parser.parse_args(argv)
    if args.check:
        problems = differences()
        for problem in problems:
            print(problem)
        if problems:
            print("contracts/ is out of date: run make contracts")
        return 1 if problems else 0
    written = contracts.write(documents())
    print(f"wrote {len(written)} files under {contracts.CONTRACTS_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
