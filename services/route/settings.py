from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class RouteSettings(ServiceSettings):
    """Route's settings; environment variables are prefixed ``ROUTE_``."""

    model_config = SettingsConfigDict(env_prefix="ROUTE_", populate_by_name=True, extra="ignore")

    http_port: int = 8082
    # Files in the config dir (an absolute path points elsewhere, e.g. a test's service levels).
    rules_file: str = "routing.toml"
    service_levels_file: str = "service_levels.toml"
    teams_file: str = "teams.toml"
    # How often the service-level timer loop looks for legs past their deadlines.
    sla_scan_seconds: float = 5.0
