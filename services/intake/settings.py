from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from shared.settings import ServiceSettings


class IntakeSettings(ServiceSettings):
    """Intake's settings; environment variables are prefixed ``INTAKE_``."""

    model_config = SettingsConfigDict(env_prefix="INTAKE_", populate_by_name=True, extra="ignore")

    http_port: int = 8080
    # Key for tracking tokens (HMAC of the request id). Set a long random value in production.
    tracking_secret: str = "local-development-only-tracking-secret"  # noqa: S105
    max_body_bytes: int = 64 * 1024
    public_base_url: str = "http://127.0.0.1:8080"
    # Rules (rate limits, priority-lane words, Open311 metadata) and the partner list, in the
    # config dir.
    rules_file: str = "intake.toml"
    partners_file: str = "partners.toml"
    # Open311 api keys, a JSON list or comma-separated (INTAKE_OPEN311_API_KEYS=k1,k2). Only
    # their SHA-256 is kept once the app is built.
    open311_api_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    # Partner HMAC secrets as JSON, {"<secret key>": "<secret>"}; never in a file of the repo.
    partner_secrets: dict[str, SecretStr] = Field(default_factory=dict)

    @field_validator("open311_api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value
