"""Intake's rules, pure functions: request ids, tracking tokens, the masked public view, the
priority lane, partner signatures, api-key and phone hashing. Loading the TOML files is the
only I/O here (done once at start-up)."""

from __future__ import annotations

import hashlib
import hmac
import math
import tomllib
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared.envelope import derive_id, new_id
from shared.keys import sha256_hex
from shared.schemas import CATEGORIES, HelpRequest
from shared.topics import Topic

# --- configuration -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RateLimits:
    phone_capacity: float = 5
    phone_per_minute: float = 0.5
    client_capacity: float = 600
    client_per_minute: float = 6000


@dataclass(frozen=True, slots=True)
class PriorityLane:
    special_groups: frozenset[str] = frozenset()
    keywords: tuple[str, ...] = ()  # case-folded


@dataclass(frozen=True, slots=True)
class Open311Service:
    code: str
    name_zh: str
    name_en: str
    description: str
    keywords: tuple[str, ...]
    group: str


@dataclass(frozen=True, slots=True)
class Open311Config:
    max_results: int = 200
    default_days: int = 90
    max_days: int = 90
    jurisdiction_id: str = ""
    services: dict[str, Open311Service] = field(default_factory=dict)
    districts: dict[str, str] = field(default_factory=dict)
    special_groups: dict[str, str] = field(default_factory=dict)
    languages: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class IntakeRules:
    rate_limits: RateLimits = RateLimits()
    lane: PriorityLane = PriorityLane()
    max_clock_skew_seconds: int = 300
    open311: Open311Config = Open311Config()


@dataclass(frozen=True, slots=True)
class Partner:
    partner_id: str
    name: str
    secret_key: str
    enabled: bool = True


def load_rules(path: Path) -> IntakeRules:
    """``config/intake.toml`` as :class:`IntakeRules`; unknown categories fail start-up."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    limits = data.get("rate_limits", {})
    lane = data.get("priority_lane", {})
    o311 = data.get("open311", {})
    services = {
        code: Open311Service(
            code=code,
            name_zh=str(s["name_zh"]),
            name_en=str(s["name_en"]),
            description=str(s.get("description", "")),
            keywords=tuple(str(k) for k in s.get("keywords", ())),
            group=str(s.get("group", "")),
        )
        for code, s in o311.get("services", {}).items()
    }
    unknown = set(services) - set(CATEGORIES)
    if unknown:
        raise ValueError(f"{path}: unknown Open311 service codes {sorted(unknown)}")
    return IntakeRules(
        rate_limits=RateLimits(
            phone_capacity=float(limits.get("phone_capacity", 5)),
            phone_per_minute=float(limits.get("phone_per_minute", 0.5)),
            client_capacity=float(limits.get("client_capacity", 600)),
            client_per_minute=float(limits.get("client_per_minute", 6000)),
        ),
        lane=PriorityLane(
            special_groups=frozenset(str(g) for g in lane.get("special_groups", ())),
            keywords=tuple(str(k).casefold() for k in lane.get("keywords", ()) if str(k).strip()),
        ),
        max_clock_skew_seconds=int(data.get("partner_http", {}).get("max_clock_skew_seconds", 300)),
        open311=Open311Config(
            max_results=int(o311.get("max_results", 200)),
            default_days=int(o311.get("default_days", 90)),
            max_days=int(o311.get("max_days", 90)),
            jurisdiction_id=str(o311.get("jurisdiction_id", "")),
            services=services,
            districts={str(k): str(v) for k, v in o311.get("districts", {}).items()},
            special_groups={str(k): str(v) for k, v in o311.get("special_groups", {}).items()},
            languages={str(k): str(v) for k, v in o311.get("languages", {}).items()},
        ),
    )


def load_partners(path: Path) -> dict[str, Partner]:
    """``config/partners.toml``: the partner agencies intake accepts, by partner id."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    return {
        str(pid): Partner(
            partner_id=str(pid),
            name=str(p.get("name", pid)),
            secret_key=str(p.get("secret_key", pid)),
            enabled=bool(p.get("enabled", True)),
        )
        for pid, p in data.get("partners", {}).items()
    }


# --- ids and tokens --------------------------------------------------------------------------


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
    # Compared as bytes: compare_digest refuses str with non-ASCII characters (a 500 before).
    return hmac.compare_digest(
        tracking_token(secret, request_id).encode(), presented.encode("utf-8", "surrogatepass")
    )


def partner_request_id(partner_id: str, external_id: str) -> str:
    """The same request id for every delivery of one partner request, whatever the channel."""
    return request_id_for(client=f"partner:{partner_id}", idempotency_key=external_id)


digest = sha256_hex  # a secret or an identifier that must not be kept in clear


def phone_key(phone: str) -> str:
    """A rate-limit key for a phone: hash of its digits (full-width digits count, spaces and
    dashes do not, a leading +86 does not), so one number in many shapes is one key."""
    digits = "".join(
        str(unicodedata.digit(c)) for c in phone if unicodedata.digit(c, None) is not None
    )
    if digits.startswith("86") and len(digits) > 11:
        digits = digits[2:]
    return digest(f"phone:{digits}")[:32]


# --- priority lane ---------------------------------------------------------------------------


def lane_for(request: HelpRequest, rules: IntakeRules) -> Topic:
    """Urgent-looking requests (a green-channel group, a life-threatening word) take the priority
    topic, so verification never leaves them behind a backlog of ordinary requests."""
    if rules.lane.special_groups.intersection(request.special_groups):
        return Topic.SUBMITTED_PRIORITY
    text = request.description.casefold()
    if any(word in text for word in rules.lane.keywords):
        return Topic.SUBMITTED_PRIORITY
    return Topic.SUBMITTED


# --- partner signatures ------------------------------------------------------------------------


def partner_signature(secret: str, timestamp: str, nonce: str, body: bytes) -> str:
    """hex HMAC-SHA256(secret, "{timestamp}\\n{nonce}\\n" + body), what a partner sends."""
    message = f"{timestamp}\n{nonce}\n".encode() + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class SignatureCheck:
    """Outcome of checking a signed partner request; ``reason`` is None when it passed."""

    reason: str | None
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.reason is None


def check_partner_signature(
    *,
    headers: Mapping[str, str | None],
    body: bytes,
    partners: Mapping[str, Partner],
    secrets: Mapping[str, str],
    now: float,
    max_skew_seconds: int,
) -> SignatureCheck:
    """Authenticate one partner request (headers X-Partner-Id, X-Timestamp, X-Nonce,
    X-Signature). The nonce is checked for replay by the caller, after this passes."""
    partner_id = headers.get("x-partner-id")
    timestamp = headers.get("x-timestamp")
    nonce = headers.get("x-nonce")
    signature = headers.get("x-signature")
    if not partner_id or not timestamp or not nonce or not signature:
        given = {
            "X-Partner-Id": partner_id,
            "X-Timestamp": timestamp,
            "X-Nonce": nonce,
            "X-Signature": signature,
        }
        missing = ", ".join(name for name, value in given.items() if not value)
        return SignatureCheck("missing_headers", f"Missing {missing}.")
    partner = partners.get(partner_id)
    secret = secrets.get(partner.secret_key) if partner is not None else None
    if partner is None or not partner.enabled or not secret:
        return SignatureCheck("unknown_partner", "This partner is not accepted.")
    if len(nonce) > 128 or not nonce.isascii():
        return SignatureCheck("bad_nonce", "X-Nonce must be 1-128 ASCII characters.")
    try:
        sent_at = float(timestamp)
    except ValueError:
        return SignatureCheck("bad_timestamp", "X-Timestamp must be unix seconds.")
    if not math.isfinite(sent_at):
        return SignatureCheck("bad_timestamp", "X-Timestamp must be unix seconds.")
    if abs(now - sent_at) > max_skew_seconds:
        return SignatureCheck(
            "stale_timestamp", f"X-Timestamp is more than {max_skew_seconds} s from now."
        )
    expected = partner_signature(secret, timestamp, nonce, body)
    presented = signature.strip().lower().encode("utf-8", "surrogatepass")
    if not hmac.compare_digest(expected.encode(), presented):  # bytes: any characters
        return SignatureCheck("bad_signature", "X-Signature does not match.")
    return SignatureCheck(None)


# --- views -------------------------------------------------------------------------------------


def mask_phone(phone: str | None) -> str | None:
    """138****8000: enough for a citizen to recognise their number, useless to anyone else."""
    if not phone:
        return phone
    digits = [c for c in phone if c.isdigit()]
    if len(digits) > 11 and digits[:2] == ["8", "6"]:
        digits = digits[2:]  # +86: show the national number
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
    contact = doc.get("contact") or {}
    view["contact"] = {
        "name": mask_name(contact.get("name")),
        "phone": mask_phone(contact.get("phone")),
    }
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
