from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class IntakeSettings(ServiceSettings):
    """Intake's settings; environment variables are prefixed ``INTAKE_``."""

    model_config = SettingsConfigDict(env_prefix="INTAKE_", populate_by_name=True, extra="ignore")

    http_port: int = 8080
    # Key for tracking tokens (HMAC of the request id). Set a long random value in production.
    tracking_secret: str = "local-development-only-tracking-secret"  # noqa: S105
    max_body_bytes: int = 64 * 1024
    public_base_url: str = "http://127.0.0.1:8080"
