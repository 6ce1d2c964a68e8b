from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from shared.settings import ServiceSettings, development_value


class IntakeSettings(ServiceSettings):
    """Intake's settings; environment variables are prefixed ``INTAKE_``."""

    model_config = SettingsConfigDict(env_prefix="INTAKE_", populate_by_name=True, extra="ignore")

    http_port: int = 8080
    # HTTP worker processes (uvicorn --workers), each with its own producer, consumer, rate
    # limits and replay cache; metrics are summed over them (prometheus_client multiprocess).
    http_workers: int = Field(1, ge=1, le=16)
    # The HTTP/1.1 parser: httptools (llhttp, in C; a sixth less CPU per accepted request) or
    # h11 (pure Python), see services/intake/server.py.
    http_parser: Literal["h11", "httptools"] = "httptools"
    # Key for tracking tokens (HMAC of the request id). Set a long random value in production:
    # outside development the service refuses to start with the published default.
    tracking_secret: str = development_value("tracking-secret")
    max_body_bytes: int = 64 * 1024
    public_base_url: str = "http://127.0.0.1:8080"
    # Rules (rate limits, priority-lane words, Open311 metadata) and the partner list, in the
    # config dir.
    rules_file: str = "intake.toml"
    partners_file: str = "partners.toml"
    # How often the tracking page reloads the status (seconds).
    track_refresh_seconds: float = Field(5.0, gt=0)
    # Open311 api keys, a JSON list or comma-separated (INTAKE_OPEN311_API_KEYS=k1,k2). Only
    # their SHA-256 is kept once the app is built.
    open311_api_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    # Partner HMAC secrets as JSON, {"<secret key>": "<secret>"}; never in a file of the repo.
    partner_secrets: dict[str, SecretStr] = Field(default_factory=dict)
    # Submission records are written off the request path by a batch writer: one unordered
    # insert of at most `record_batch_max` (< 100, FerretDB's limit) about every
    # `record_flush_seconds`; at most `record_buffer_max` wait, encoded (about 1 KB each),
    # while the database is away or behind (more are dropped and counted: verify creates them).
    record_batch_max: int = Field(99, ge=1, le=99)
    record_flush_seconds: float = Field(0.02, gt=0)
    record_buffer_max: int = Field(10_000, ge=1)
    record_timeout_seconds: float = Field(5.0, gt=0)
    # Recent keyed receipts kept in memory to answer retries; a retry not found there reads
    # the database once, for at most `replay_lookup_timeout_seconds`.
    replay_cache_size: int = Field(100_000, ge=0)
    replay_cache_ttl_seconds: float = Field(3600.0, gt=0)
    replay_lookup_timeout_seconds: float = Field(1.0, gt=0)

    # Proxies (addresses or CIDR blocks, comma-separated) whose X-Forwarded-For names the
    # client the per-client rate limit counts; from anyone else the header is ignored.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("open311_api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value
