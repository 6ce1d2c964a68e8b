"""docker-compose.yml cannot run here (no Docker engine), so check it against the code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from services.intake.settings import IntakeSettings
from services.notify.settings import NotifySettings
from services.route.settings import RouteSettings
from services.verify.settings import VerifySettings
from shared.settings import ServiceSettings

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
SETTINGS: dict[str, type[ServiceSettings]] = {
    "intake": IntakeSettings,
    "verify": VerifySettings,
    "route": RouteSettings,
    "notify": NotifySettings,
}


def env_names(settings: type[ServiceSettings]) -> set[str]:
    prefix = str(settings.model_config.get("env_prefix", ""))
    names = set()
    for name, field in settings.model_fields.items():
        alias = field.validation_alias
        names.add(alias if isinstance(alias, str) else f"{prefix}{name}".upper())
    return names


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    return data


def test_every_service_is_in_compose_on_its_contract_port(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, settings in SETTINGS.items():
        assert name in services, name
        port = settings().http_port
        assert services[name]["ports"] == [f"{port}:{port}"]
        assert services[name]["environment"]["SERVICE"] == name
        assert (REPO / "services" / name / "__main__.py").exists()


def test_every_variable_in_compose_exists_in_the_settings(compose: dict[str, Any]) -> None:
    for name, settings in SETTINGS.items():
        known = env_names(settings) | {"SERVICE"}
        given = set(compose["services"][name]["environment"])
        assert given - known == set(), f"{name}: unknown variables {sorted(given - known)}"


def test_infrastructure_images(compose: dict[str, Any]) -> None:
    assert compose["services"]["kafka"]["image"].startswith("apache/kafka:")
    assert compose["services"]["mongodb"]["image"].startswith("mongo:")
    assert compose["services"]["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
