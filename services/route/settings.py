from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class RouteSettings(ServiceSettings):
    """Route's settings; environment variables are prefixed ``ROUTE_``."""

    model_config = SettingsConfigDict(env_prefix="ROUTE_", populate_by_name=True, extra="ignore")

    http_port: int = 8082
    rules_file: str = "routing.toml"
    service_levels_file: str = "service_levels.toml"
