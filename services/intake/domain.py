"""Intake's rules: request ids, tracking tokens and the masked public view. Pure functions."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from shared.envelope import derive_id, new_id


def request_id_for(*, client: str, idempotency_key: str | None) -> str:
    """A new request id; with an idempotency key, the same id for every retry of one submission."""
    if idempotency_key:
        return derive_id("request", client, idempotency_key)
    return new_id()


def tracking_token(secret: str, request_id: str) -> str:
    """The citizen's secret for the full view of their request (recomputable, never stored)."""
    return hmac.new(secret.encode(), request_id.encode(), hashlib.sha256).hexdigest()[:32]


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_matches(secret: str, request_id: str, presented: str | None) -> bool:
    if not presented:
        return False
    return hmac.compare_digest(tracking_token(secret, request_id), presented)


def mask_phone(phone: str | None) -> str | None:
    """138****8000: enough for a citizen to recognise their number, useless to anyone else."""
    if not phone:
        return phone
    digits = [c for c in phone if c.isdigit()]
    if len(digits) < 7:
        return "*" * len(digits)
    return "".join(digits[:3]) + "****" + "".join(digits[-4:])


def mask_name(name: str | None) -> str | None:
    if not name:
        return name
    return name[0] + "*" * max(1, len(name) - 1)


_PUBLIC_FIELDS = (
    "request_id",
    "status",
    "priority",
    "category",
    "departments",
    "duplicate_of",
    "submitted_at",
    "updated_at",
    "green_channel",
    "channel",
)


def public_view(doc: dict[str, Any]) -> dict[str, Any]:
    """Status and timeline without personal data: no description, name, phone or address."""
    view = {k: doc.get(k) for k in _PUBLIC_FIELDS}
    location = doc.get("location") or {}
    view["district"] = doc.get("district") or location.get("district")
    view["timeline"] = [
        {k: entry.get(k) for k in ("status", "at", "actor", "reason")}
        for entry in doc.get("timeline", [])
    ]
    view["view"] = "public"
    return view


def full_view(doc: dict[str, Any]) -> dict[str, Any]:
    """What the citizen holding the tracking token sees."""
    view = public_view(doc)
    view.update(
        {
            "description": doc.get("description"),
            "contact": doc.get("contact"),
            "location": doc.get("location"),
            "special_groups": doc.get("special_groups", []),
            "language": doc.get("language"),
            "reasons": doc.get("reasons", []),
            "legs": doc.get("legs", []),
        }
    )
    view["timeline"] = [
        {k: entry.get(k) for k in ("status", "at", "actor", "reason", "detail")}
        for entry in doc.get("timeline", [])
    ]
    view["view"] = "full"
    return view
