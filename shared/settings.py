"""Settings common to every service, read from the environment by pydantic-settings.

Common connection settings use fixed names (``KAFKA_BOOTSTRAP``, ``MONGODB_URI``, ...); each
service subclasses :class:`ServiceSettings` with its own ``env_prefix`` (``INTAKE_``, ...) for
the rest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared import faults

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = REPO_ROOT / "config"

# Keys and secrets whose default begins with this are published in the repository: fit for a
# laptop, never for a city. Outside development (DEVELOPMENT_FLAG) a service refuses to start
# while one of them still holds such a value, or is empty.
DEVELOPMENT_VALUE = "local-development-only-"
DEVELOPMENT_FLAG = "CITYHELP_DEVELOPMENT"


def development_value(name: str) -> str:
    """The published development default of a secret (``local-development-only-<name>``)."""
    return f"{DEVELOPMENT_VALUE}{name}"


def _published(value: Any) -> bool:
    """Whether a value, or anything inside it, is a published development value."""
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if isinstance(value, str):
        return value.startswith(DEVELOPMENT_VALUE)
    if isinstance(value, dict):
        return any(_published(v) for v in value.values())
    if isinstance(value, list | tuple | set | frozenset):
        return any(_published(v) for v in value)
    return False


class ServiceSettings(BaseSettings):
    """Connection and runtime settings every service has."""

    model_config = SettingsConfigDict(populate_by_name=True, extra="ignore")

    kafka_bootstrap: str = Field("127.0.0.1:9092", validation_alias="KAFKA_BOOTSTRAP")
    kafka_security_protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL", "SSL"] = Field(
        "PLAINTEXT", validation_alias="KAFKA_SECURITY_PROTOCOL"
    )
    kafka_sasl_mechanism: Literal["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"] = Field(
        "SCRAM-SHA-512", validation_alias="KAFKA_SASL_MECHANISM"
    )
    kafka_sasl_username: str = Field("", validation_alias="KAFKA_SASL_USERNAME")
    kafka_sasl_password: str = Field("", validation_alias="KAFKA_SASL_PASSWORD")
    kafka_ssl_cafile: str = Field("", validation_alias="KAFKA_SSL_CAFILE")
    topic_prefix: str = Field("", validation_alias="TOPIC_PREFIX")
    # Replicas of each topic this service creates, and the in-sync replicas a write with
    # acks=all needs (the topic's min.insync.replicas): 3 and 2 on a production cluster, so one
    # broker can be down without refusing or losing writes; 1 and 1 on one local broker.
    # Unset: the [defaults] of config/topics.toml.
    kafka_replication_factor: int | None = Field(
        None, ge=1, validation_alias="KAFKA_REPLICATION_FACTOR"
    )
    kafka_min_insync_replicas: int | None = Field(
        None, ge=1, validation_alias="KAFKA_MIN_INSYNC_REPLICAS"
    )
    mongodb_uri: str = Field(
        "mongodb://127.0.0.1:27017/?directConnection=true&retryWrites=false",
        validation_alias="MONGODB_URI",
    )
    mongodb_database: str = Field("cityhelp", validation_alias="MONGODB_DATABASE")
    config_dir: Path = Field(CONFIG_DIR, validation_alias="CITYHELP_CONFIG_DIR")
    # Files every service reads, in the config dir (an absolute path points elsewhere): the
    # city (names, phone numbering, time zone, districts) and triage (the priorities verify
    # records and the fast lane intake picks from them).
    jurisdiction_file: str = Field(
        "jurisdiction.toml", validation_alias="CITYHELP_JURISDICTION_FILE"
    )
    triage_file: str = Field("triage.toml", validation_alias="CITYHELP_TRIAGE_FILE")
    log_level: str = Field("INFO", validation_alias="LOG_LEVEL")
    log_format: Literal["json", "text"] = Field("json", validation_alias="LOG_FORMAT")
    instance_id: str = Field("", validation_alias="INSTANCE_ID")

    # A stage consumes batches: up to this many records, or what arrived within this time.
    batch_max_records: int = 500
    batch_timeout_ms: int = 20
    # Records of one batch handled at the same time (different request ids; one request's
    # records stay in order) by the stages that still act record by record.
    batch_concurrency: int = 64
    # The producer's batching (aiokafka): a record waits up to `kafka_linger_ms` for others
    # to the same partition, batches hold up to `kafka_max_batch_bytes`; compression is off
    # (gzip is built in; lz4, snappy and zstd need extra packages). acks=all and idempotence
    # are fixed (shared.kafka.build_broker). E.g. INTAKE_KAFKA_LINGER_MS.
    kafka_linger_ms: int = Field(0, ge=0, le=1000)
    kafka_max_batch_bytes: int = Field(16 * 1024, ge=1024)
    kafka_compression: Literal["none", "gzip", "lz4", "snappy", "zstd"] = "none"
    # What a consumer fetches ahead of its batches, at most (aiokafka's defaults, 50 MiB and
    # 1 MiB a partition, let a stage behind a backlog hold tens of MB of records it has not
    # reached). A batch of 500 records of about 1 KB is 0.5 MiB.
    kafka_fetch_max_bytes: int = Field(4 * 1024 * 1024, ge=64 * 1024)
    kafka_partition_fetch_bytes: int = Field(256 * 1024, ge=16 * 1024)
    http_host: str = "127.0.0.1"
    http_port: int = 0
    # Key that signs the pages' CSRF tokens (e.g. INTAKE_PAGE_SECRET); set it in production.
    page_secret: str = "local-development-only-page-secret"  # noqa: S105
    # Consecutive records sent to the dead-letter topic before the stage stops consuming.
    dlq_consecutive_limit: int = 1000
    # Back-off for transient failures (database or broker unavailable), in seconds.
    retry_initial_seconds: float = 0.5
    retry_max_seconds: float = 15.0
    # How often the service measures its consumer groups' lag (cityhelp_consumer_lag); 0 = never.
    lag_interval_seconds: float = 15.0
    # Fault tests only: crash points to arm, e.g. "route.after_publish:3" (see shared/faults.py).
    crash_points: str = Field("", validation_alias="CITYHELP_CRASH_POINTS")
    # A development machine (make run, make test, make chaos, make bench, docker compose): the
    # published development defaults of keys and secrets are allowed. Off in production.
    development: bool = Field(False, validation_alias=DEVELOPMENT_FLAG)

    @field_validator("development", mode="before")
    @classmethod
    def _blank_is_off(cls, value: Any) -> Any:
        return False if isinstance(value, str) and not value.strip() else value

    def env_name(self, field: str) -> str:
        """The environment variable that sets ``field``."""
        alias = type(self).model_fields[field].validation_alias
        if isinstance(alias, str):
            return alias
        return f"{self.model_config.get('env_prefix', '')}{field}".upper()

    def development_defaults(self) -> list[str]:
        """The variables that still hold a published development value: a value beginning with
        ``local-development-only-``, or nothing where the default was one."""
        found = []
        for name, info in type(self).model_fields.items():
            value = getattr(self, name)
            blank = isinstance(value, str) and not value.strip()
            if _published(value) or (blank and _published(info.default)):
                found.append(self.env_name(name))
        return sorted(found)

    def refusal(self) -> str | None:
        """Why the service must not start with these settings, or None."""
        found = self.development_defaults()
        if not found or self.development:
            return None
        return (
            f"refusing to start: {', '.join(found)} still "
            f"{'holds' if len(found) == 1 else 'hold'} the development default published in "
            "the repository (anyone could compute tracking tokens or forge signatures with it). "
            "Set a long random value (see deploy/env.sample), or, on a development machine, "
            f"set {DEVELOPMENT_FLAG}=1."
        )

    @field_validator("crash_points")
    @classmethod
    def _crash_points_parse(cls, value: str) -> str:
        faults.parse(value)  # a malformed list stops the service at start, not at the point
        return value
