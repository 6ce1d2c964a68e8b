from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings, development_value


class NotifySettings(ServiceSettings):
    """Notify's settings; environment variables are prefixed ``NOTIFY_``."""

    model_config = SettingsConfigDict(env_prefix="NOTIFY_", populate_by_name=True, extra="ignore")

    http_port: int = 8083
    # Channels by name: "log", "sms", "webhook" (e.g. NOTIFY_CHANNELS='["sms","webhook"]').
    channels: tuple[str, ...] = ("log",)
    # Links in messages: the status page (intake) and the survey answer (notify itself).
    public_base_url: str = "http://127.0.0.1:8080"
    survey_base_url: str = "http://127.0.0.1:8083"
    # Key that signs the survey links sent to citizens (the survey page needs a signed link).
    survey_link_secret: str = development_value("survey-link-secret")
    # SMS gateway: POST JSON {to, text, idempotency_key} with a bearer token.
    sms_url: str = "http://127.0.0.1:8099/messages"
    sms_token: str = ""
    # Signed webhook: POST JSON with X-Signature = hex HMAC-SHA256(secret, body).
    webhook_url: str = "http://127.0.0.1:8099/webhook"
    # Both have published development defaults, refused outside development.
    webhook_secret: str = development_value("webhook-secret")
    # Key of the phone-number hash that keys the per-citizen rate limit (never the number).
    phone_hash_key: str = development_value("phone-hash-key")
    # Delivery attempts per message and channel, with exponential back-off between them.
    send_attempts: int = 4
    send_base_delay_seconds: float = 0.5
    send_max_delay_seconds: float = 8.0
    send_timeout_seconds: float = 5.0
    # Sends in flight per channel (and connections kept to its far end): enough for the
    # gateway's latency times the messages per second wanted (32 at 100 ms: 320/s).
    send_concurrency: int = Field(32, ge=1)
    rules_file: str = "notify.toml"
    templates_dir: str = "templates"
    # The call-back survey's timers (services/notify/surveys.py), counted from when the survey
    # went out: one reminder if it is unanswered after `survey_reminder_seconds`, and the
    # request closed "without answer" after `survey_close_seconds`; timers are checked every
    # `survey_scan_seconds`.
    survey_reminder_seconds: float = Field(24 * 3600.0, gt=0)
    survey_close_seconds: float = Field(72 * 3600.0, gt=0)
    survey_scan_seconds: float = Field(30.0, gt=0)
    # The link where a citizen adds what a department asked for (route's HTTP port).
    info_base_url: str = "http://127.0.0.1:8082"
