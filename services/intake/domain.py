"""Intake's rules, pure functions: request ids, tracking tokens, the masked public view, the
priority lane, partner signatures, api-key and phone hashing. Loading the TOML files is the
only I/O here (done once at start-up)."""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
import math
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared.envelope import derive_id, new_id
from shared.jurisdiction import Jurisdiction, load_jurisdiction
from shared.keys import sha256_hex
from shared.phones import e164, phone_identity
from shared.schemas import CATEGORIES, HelpRequest
from shared.topics import Topic
from shared.triage import Triage, assess, load_triage

# --- clients ---

Networks = tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]


def trusted_networks(entries: Iterable[str]) -> Networks:
    """The proxies whose X-Forwarded-For is believed (addresses or CIDR blocks)."""
    return tuple(ipaddress.ip_network(e.strip(), strict=False) for e in entries if e.strip())


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def _trusted(ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None, proxies: Networks) -> bool:
    return ip is not None and any(ip in net for net in proxies)


@functools.lru_cache(maxsize=256)
def _trusted_peer(peer: str, proxies: Networks) -> bool:
    """Whether the connection's peer is a configured proxy (a handful of addresses: cached)."""
    return _trusted(_ip(peer), proxies)


def client_address(peer: str | None, forwarded_for: str | None, proxies: Networks) -> str:
    """The address a web client is rate-limited by: the connection's peer, or — when the peer
    is a configured proxy — the last address in X-Forwarded-For that is not itself a
    configured proxy. Headers from anyone else are ignored: a client sets them at will."""
    address = peer or "unknown"
    if not forwarded_for or not _trusted_peer(address, proxies):
        return address
    for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
        ip = _ip(hop)
        if ip is None:
            return address  # garbage from the far side: count it on the proxy
        if not _trusted(ip, proxies):
            return str(ip)
        address = hop
    return address


# --- configuration -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RateLimits:
    phone_capacity: float = 5
    phone_per_minute: float = 0.5
    client_capacity: float = 600
    client_per_minute: float = 6000
    client_chunk: int = 10
    client_grace: int = 5


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
    # The city (phone numbering, districts) and triage (the fast lane), the files every
    # service reads.
    jurisdiction: Jurisdiction
    triage: Triage
    rate_limits: RateLimits = RateLimits()
    max_clock_skew_seconds: int = 300
    open311: Open311Config = Open311Config()


@dataclass(frozen=True, slots=True)
class Partner:
    partner_id: str
    name: str
    secret_key: str
    enabled: bool = True


def load_rules(
    path: Path,
    *,
    jurisdiction_path: Path | None = None,
    triage_path: Path | None = None,
) -> IntakeRules:
    """``config/intake.toml`` as :class:`IntakeRules`, with the jurisdiction and triage files
    (by default beside it); unknown categories fail start-up."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    jurisdiction = load_jurisdiction(jurisdiction_path or path.parent / "jurisdiction.toml")
    limits = data.get("rate_limits", {})
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
        jurisdiction=jurisdiction,
        triage=load_triage(triage_path or path.parent / "triage.toml"),
        rate_limits=RateLimits(
            phone_capacity=float(limits.get("phone_capacity", 5)),
            phone_per_minute=float(limits.get("phone_per_minute", 0.5)),
            client_capacity=float(limits.get("client_capacity", 600)),
            client_per_minute=float(limits.get("client_per_minute", 6000)),
            client_chunk=int(limits.get("client_chunk", 10)),
            client_grace=int(limits.get("client_grace", 5)),
        ),
        max_clock_skew_seconds=int(data.get("partner_http", {}).get("max_clock_skew_seconds", 300)),
        open311=Open311Config(
            max_results=int(o311.get("max_results", 200)),
            default_days=int(o311.get("default_days", 90)),
            max_days=int(o311.get("max_days", 90)),
            jurisdiction_id=jurisdiction.code,
            services=services,
            districts={d.code: d.label() for d in jurisdiction.districts},
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


def phone_key(phone: str, jurisdiction: Jurisdiction) -> str:
    """A rate-limit key for a phone: hash of the number as every service reads it
    (``shared.phones``), so one number in many shapes is one key."""
    return digest(f"phone:{phone_identity(phone, jurisdiction)}")[:32]


# --- priority lane ---------------------------------------------------------------------------


def lane_for(request: HelpRequest, rules: IntakeRules) -> Topic:
    """Requests triage calls urgent (P1, P2 or green channel, by the same rules verify records
    the priority with) take the priority topic, so verification never leaves them behind a
    backlog of ordinary requests."""
    result = assess(
        description=request.description,
        category=request.category,
        special_groups=request.special_groups,
        rules=rules.triage,
    )
    return Topic.SUBMITTED_PRIORITY if result.urgent else Topic.SUBMITTED


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


def mask_phone(phone: str | None, jurisdiction: Jurisdiction) -> str | None:
    """138****8000: enough for a citizen to recognise their number, useless to anyone else.
    A number of the city's country shows its national digits, another country's its own."""
    if not phone:
        return phone
    number = e164(phone, jurisdiction)
    digits = [c for c in (number or phone) if c.isdigit()]
    own = str(jurisdiction.country_code)
    if number is not None and number.startswith(f"+{own}"):
        digits = digits[len(own) :]  # the national number
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


def public_view(doc: dict[str, Any], jurisdiction: Jurisdiction) -> dict[str, Any]:
    """Status and timeline without personal data: no description, name, phone or address.
    The district is verification's code (none before verification, never the raw text)."""
    view = {k: doc.get(k) for k in _PUBLIC_FIELDS}
    view["district"] = doc.get("district")
    contact = doc.get("contact") or {}
    view["contact"] = {
        "name": mask_name(contact.get("name")),
        "phone": mask_phone(contact.get("phone"), jurisdiction),
    }
    view["timeline"] = [
        {k: entry.get(k) for k in ("status", "at", "actor", "reason")}
        for entry in doc.get("timeline", [])
    ]
    view["view"] = "public"
    return view


def full_view(doc: dict[str, Any], jurisdiction: Jurisdiction) -> dict[str, Any]:
    """What the citizen holding the tracking token sees."""
    view = public_view(doc, jurisdiction)
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
