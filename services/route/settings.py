from __future__ import annotations

import re

from pydantic import Field, field_validator
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
    # A due deadline is claimed by one route process before it is escalated; a claim not
    # settled within this many seconds (its holder died) is taken over by another process.
    sla_claim_lease_seconds: float = Field(60.0, gt=0)
    # Command-centre desks and the SHA-256 (hex) of their keys, as a JSON object
    # (ROUTE_COMMAND_KEYS='{"desk-1": "<sha256 hex of the key>"}'); the keys themselves are
    # never configured. Empty: GET /v1/command/summary answers 401 to everybody.
    command_keys: dict[str, str] = Field(default_factory=dict)
    # Department boards and the SHA-256 (hex) of their keys, by department
    # (ROUTE_BOARD_KEYS='{"medical": "<sha256 hex of the key>"}'). Empty: no board opens.
    board_keys: dict[str, str] = Field(default_factory=dict)

    @field_validator("command_keys", "board_keys")
    @classmethod
    def _digests_only(cls, value: dict[str, str]) -> dict[str, str]:
        for desk, digest in value.items():
            if not re.fullmatch(r"[0-9a-f]{64}", digest):
                raise ValueError(f"{desk!r} must be given as a hex SHA-256 digest of its key")
        return value
