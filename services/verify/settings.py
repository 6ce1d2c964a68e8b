from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class VerifySettings(ServiceSettings):
    """Verify's settings; environment variables are prefixed ``VERIFY_``."""

    model_config = SettingsConfigDict(env_prefix="VERIFY_", populate_by_name=True, extra="ignore")

    http_port: int = 8081
    # Verification rules, in the config dir (the jurisdiction and triage files are common to
    # every service: CITYHELP_JURISDICTION_FILE, CITYHELP_TRIAGE_FILE).
    rules_file: str = "verify.toml"
    # Human verifiers and their keys, as a JSON object {"verifier id": "key"}
    # (VERIFY_REVIEWER_KEYS). Empty: the review queue answers 401 to everybody.
    reviewer_keys: dict[str, str] = Field(default_factory=dict)
    # The call-back to a doubtful request's citizen (services/verify/calls.py): the first call
    # is due within this time of the request entering review; after this many unreachable
    # attempts (or a wrong number) the rule applies: "escalate" (flagged, listed first),
    # "verify" or "reject".
    call_service_level_seconds: float = Field(300.0, gt=0)
    call_max_unreachable: int = Field(3, ge=1)
    call_after_unreachable: Literal["escalate", "verify", "reject"] = "escalate"
    call_after_wrong_number: Literal["escalate", "verify", "reject"] = "escalate"
    # The per-phone history the duplicate and flood rules read (services/verify/history.py) keeps
    # at most this many entries in memory (a few hundred bytes each); past it the phones heard
    # from least recently are forgotten, and read back from the database when heard from again.
    history_max_entries: int = Field(50_000, ge=1)
    # How often the review queue's depth and overdue calls are measured from the database.
    queue_gauge_seconds: float = Field(5.0, gt=0)
