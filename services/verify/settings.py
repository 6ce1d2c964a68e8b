from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class VerifySettings(ServiceSettings):
    """Verify's settings; environment variables are prefixed ``VERIFY_``."""

    model_config = SettingsConfigDict(env_prefix="VERIFY_", populate_by_name=True, extra="ignore")

    http_port: int = 8081
    # Files in the config dir: verification rules, the jurisdiction (districts), triage.
    rules_file: str = "verify.toml"
    jurisdiction_file: str = "jurisdiction.toml"
    triage_file: str = "triage.toml"
    # Human verifiers and their keys, as a JSON object {"verifier id": "key"}
    # (VERIFY_REVIEWER_KEYS). Empty: the review queue answers 401 to everybody.
    reviewer_keys: dict[str, str] = Field(default_factory=dict)
