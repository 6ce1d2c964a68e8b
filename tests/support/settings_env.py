"""The environment variables the services read, from their settings classes: what the compose
file and the Helm chart are checked against (tests/unit/test_compose.py, test_helm_chart.py)."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from services.intake.settings import IntakeSettings
from services.notify.settings import NotifySettings
from services.route.settings import RouteSettings
from services.verify.settings import VerifySettings
from shared.settings import ServiceSettings
from shared.topics import ServiceName

SETTINGS: dict[ServiceName, type[ServiceSettings]] = {
    "intake": IntakeSettings,
    "verify": VerifySettings,
    "route": RouteSettings,
    "notify": NotifySettings,
}
# Contract ports (BRIEF §4), the only fixed facts the files must match besides the code.
CONTRACT_PORTS: dict[ServiceName, int] = {
    "intake": 8080,
    "verify": 8081,
    "route": 8082,
    "notify": 8083,
}
_SECRET_WORDS = ("secret", "password", "token", "key")


def env_defaults(settings: type[ServiceSettings]) -> dict[str, Any]:
    """Every environment variable of a settings class, with the field's default."""
    prefix = str(settings.model_config.get("env_prefix", ""))
    found: dict[str, Any] = {}
    for name, field in settings.model_fields.items():
        alias = field.validation_alias
        env = alias if isinstance(alias, str) else f"{prefix}{name}".upper()
        found[env] = field.get_default(call_default_factory=True)
    return found


def secret_names(settings: type[ServiceSettings]) -> set[str]:
    """The variables of fields that carry a secret (by type or by name)."""
    prefix = str(settings.model_config.get("env_prefix", ""))
    found: set[str] = set()
    for name, field in settings.model_fields.items():
        secret_type = field.annotation is SecretStr or "SecretStr" in str(field.annotation)
        if secret_type or any(word in name for word in _SECRET_WORDS):
            alias = field.validation_alias
            found.add(alias if isinstance(alias, str) else f"{prefix}{name}".upper())
    return found


DEV_KEYS = Path(__file__).resolve().parents[2] / "deploy" / "local" / "dev-keys.sh"


def dev_keys_environment(env: Mapping[str, str]) -> dict[str, str]:
    """The environment ``env`` becomes once `make run`'s key script (deploy/local/dev-keys.sh)
    was sourced in it."""
    done = subprocess.run(
        ["bash", "-c", f'source "{DEV_KEYS}" && env -0'],
        env=dict(env),
        capture_output=True,
        check=True,
        timeout=30,
    )
    return dict(item.split("=", 1) for item in done.stdout.decode().split("\0") if "=" in item)
