from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class NotifySettings(ServiceSettings):
    """Notify's settings; environment variables are prefixed ``NOTIFY_``."""

    model_config = SettingsConfigDict(env_prefix="NOTIFY_", populate_by_name=True, extra="ignore")

    http_port: int = 8083
    channels: tuple[str, ...] = ("log",)
    public_base_url: str = "http://127.0.0.1:8080"
