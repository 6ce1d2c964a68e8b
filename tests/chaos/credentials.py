"""Credentials of the services under test (local-only values) and the environment that gives
them to the services a bad-input run starts; partner request signing."""

from __future__ import annotations

import hashlib
import json
import time
import uuid

from services.intake import domain as intake_domain
from shared.envelope import event_type
from shared.topics import SERVICES

# --- credentials of the services under test (local-only values) --------------------------------

API_KEY = "chaos-open311-key"
PARTNER = "hotline-12345"
PARTNER_SECRET = "chaos-partner-secret-hotline"
OTHER_PARTNER = "hospital-zzu1"
OTHER_SECRET = "chaos-partner-secret-hospital"
VERIFIER = "chaos-verifier"
VERIFIER_KEY = "chaos-verifier-key"
COMMAND_DESK = "chaos-desk"
COMMAND_KEY = "chaos-command-key"
TRACKING_SECRET = "chaos-tracking-secret"
SURVEY_TYPE = event_type("survey.answer")


def service_env(*, dlq_limit: int | None = None) -> dict[str, str]:
    """Environment for the services under test: keys for every authenticated route."""
    env = {
        "INTAKE_OPEN311_API_KEYS": API_KEY,
        "INTAKE_PARTNER_SECRETS": json.dumps(
            {PARTNER: PARTNER_SECRET, OTHER_PARTNER: OTHER_SECRET}
        ),
        "INTAKE_TRACKING_SECRET": TRACKING_SECRET,
        "VERIFY_REVIEWER_KEYS": json.dumps({VERIFIER: VERIFIER_KEY}),
        "ROUTE_COMMAND_KEYS": json.dumps(
            {COMMAND_DESK: hashlib.sha256(COMMAND_KEY.encode()).hexdigest()}
        ),
    }
    if dlq_limit is not None:
        for service in SERVICES:
            env[f"{service.upper()}_DLQ_CONSECUTIVE_LIMIT"] = str(dlq_limit)
    return env


def sign(
    body: bytes,
    *,
    secret: str = PARTNER_SECRET,
    partner: str = PARTNER,
    stamp: str | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """Headers of a partner request signed with ``secret`` (by default now, a fresh nonce)."""
    stamp = stamp if stamp is not None else str(int(time.time()))
    nonce = nonce if nonce is not None else uuid.uuid4().hex
    return {
        "content-type": "application/json",
        "X-Partner-Id": partner,
        "X-Timestamp": stamp,
        "X-Nonce": nonce,
        "X-Signature": intake_domain.partner_signature(secret, stamp, nonce, body),
    }
