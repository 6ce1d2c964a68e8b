from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class VerifySettings(ServiceSettings):
    """Verify's settings; environment variables are prefixed ``VERIFY_``."""

    model_config = SettingsConfigDict(env_prefix="VERIFY_", populate_by_name=True, extra="ignore")

    http_port: int = 8081
