"""Notification rules: which event tells the citizen what, in which words, how often.

Pure functions and immutable values: template choice and rendering, the delivery ids that make
a message go out once, the retry schedule, the per-citizen rate limit and the survey outcome.
Files (rules, templates) are read once at start-up by the ``load_*`` functions.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import tomllib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from jinja2 import Environment, StrictUndefined, Template

from shared.envelope import derive_id
from shared.jurisdiction import Jurisdiction, load_jurisdiction
from shared.phones import e164
from shared.schemas import (
    DispatchJob,
    Language,
    LifecycleEvent,
    RejectedRequest,
    ReviewRequest,
    SubmittedRequest,
    VerifiedRequest,
)

DEFAULT_LANGUAGE: Language = "zh"
SURVEY = "survey"


# --- rules ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``max_messages`` per citizen per fixed window, except for exempt events."""

    max_messages: int
    window_seconds: int
    exempt_events: frozenset[str] = frozenset()

    def window_key(self, phone_hash: str, at: datetime) -> str:
        """The counter a message sent at ``at`` counts against (one per phone and window)."""
        window = int(at.timestamp()) // self.window_seconds
        return f"{phone_hash}|{window}"

    def exempt(self, event: str) -> bool:
        return event in self.exempt_events

    def admits(self, count_including_this: int) -> bool:
        """Whether the message that brought the window's count to this number may go out."""
        return count_including_this <= self.max_messages


@dataclass(frozen=True, slots=True)
class Rules:
    lifecycle_events: frozenset[str]
    needs_review: bool
    survey_after: frozenset[str]
    rate_limit: RateLimit
    # The city: its name in messages, its time zone, its phone numbering (the jurisdiction
    # file every service reads).
    jurisdiction: Jurisdiction
    time_format: str = "%Y-%m-%d %H:%M"
    departments: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    reasons: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


def load_rules(path: Path, *, jurisdiction_path: Path | None = None) -> Rules:
    """``config/notify.toml`` with the jurisdiction file (by default beside it)."""
    data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    events = data.get("events", {})
    limit = data.get("rate_limit", {})
    clock = data.get("time", {})
    return Rules(
        lifecycle_events=frozenset(events.get("lifecycle", ["resolved", "escalated"])),
        needs_review=bool(events.get("needs_review", True)),
        survey_after=frozenset(events.get("survey_after", ["resolved"])),
        rate_limit=RateLimit(
            max_messages=int(limit.get("max_messages", 8)),
            window_seconds=int(limit.get("window_seconds", 3600)),
            exempt_events=frozenset(limit.get("exempt_events", [])),
        ),
        jurisdiction=load_jurisdiction(jurisdiction_path or path.parent / "jurisdiction.toml"),
        time_format=str(clock.get("format", "%Y-%m-%d %H:%M")),
        departments=data.get("departments", {}),
        reasons=data.get("reasons", {}),
    )


# --- templates ------------------------------------------------------------------------------

_JINJA = Environment(undefined=StrictUndefined, autoescape=False)  # noqa: S701 (SMS text, not HTML)
# The templates fill in placeholders only; without Jinja's default globals (range, dict, …) a
# render does not merge them into its context, which was half its time.
_JINJA.globals.clear()


def template_candidates(event: str, category: str | None, language: str) -> list[str]:
    """Where to look, best first: category-specific, event generic, then the same in Chinese."""
    candidates: list[str] = []
    for lang in (language, DEFAULT_LANGUAGE):
        if category:
            candidates.append(f"{lang}/{event}.{category}.txt")
        candidates.append(f"{lang}/{event}.txt")
    return list(dict.fromkeys(candidates))


def choose_template(
    available: Collection[str], event: str, category: str | None, language: str
) -> str | None:
    """The template file for this event, category and language; None if the event has none."""
    for candidate in template_candidates(event, category, language):
        if candidate in available:
            return candidate
    return None


def load_templates(directory: Path) -> dict[str, str]:
    """Every ``<language>/<name>.txt`` under ``directory``, by relative path."""
    return {
        path.relative_to(directory).as_posix(): path.read_text(encoding="utf-8")
        for path in sorted(directory.glob("*/*.txt"))
    }


@functools.lru_cache(maxsize=512)
def _compiled(source: str) -> Template:
    """A template's source compiled once (compiling costs far more than rendering)."""
    return _JINJA.from_string(source)


def render(source: str, values: Mapping[str, Any]) -> str:
    """The message text; a placeholder without a value is an error, never an empty gap."""
    return _compiled(source).render(**values).strip()


# --- what an input event means for the citizen ----------------------------------------------


@dataclass(frozen=True, slots=True)
class Notice:
    """One thing to tell the citizen, before channels and contact are resolved."""

    request_id: str
    event: str
    category: str | None
    language: Language | None  # None: not stated by the event, take the request's
    phone: str | None  # None: not carried by the event, take the request's
    values: Mapping[str, str]
    leg: str = ""
    team_id: str | None = None
    department: str | None = None
    # The request record as its submission creates it, when this notice comes from one.
    initial_record: Mapping[str, Any] | None = None


def local_time(at: datetime, rules: Rules) -> str:
    return at.astimezone(ZoneInfo(rules.jurisdiction.time_zone)).strftime(rules.time_format)


def status_link(base_url: str, request_id: str, language: str = DEFAULT_LANGUAGE) -> str:
    """The request's tracking page (intake's), in the citizen's language."""
    return f"{base_url.rstrip('/')}/requests/{request_id}?lang={language}"


def survey_signature(secret: str, request_id: str) -> str:
    """What makes a survey link the citizen's: only notify can sign one for a request."""
    digest = hmac.new(secret.encode(), f"survey:{request_id}".encode(), hashlib.sha256)
    return digest.hexdigest()[:32]


def survey_signed(secret: str, request_id: str, presented: str | None) -> bool:
    if not presented or not secret:
        return False
    expected = survey_signature(secret, request_id).encode()
    return hmac.compare_digest(expected, presented.encode("utf-8", "surrogatepass"))


def survey_link(base_url: str, request_id: str, *, secret: str, language: str) -> str:
    """The survey page (notify's): GET shows the question, POST answers it."""
    sig = survey_signature(secret, request_id)
    return f"{base_url.rstrip('/')}/surveys/{request_id}?lang={language}&s={sig}"


def from_submitted(event: SubmittedRequest, rules: Rules, *, public_base_url: str) -> Notice:
    req = event.request
    return Notice(
        request_id=event.request_id,
        event="received",
        category=req.category,
        language=req.language,
        # None for an unusable number: nobody can be told (verify rejects the request).
        phone=e164(req.contact.phone, rules.jurisdiction),
        values={"status_link": status_link(public_base_url, event.request_id, req.language)},
    )


def _checked(event: VerifiedRequest | DispatchJob, name: str, values: Mapping[str, str]) -> Notice:
    """A notice about a verified request or its job: both carry the checked contact, the
    category and the language under the same names."""
    return Notice(
        request_id=event.request_id,
        event=name,
        category=event.category,
        language=event.language,
        phone=event.contact.phone,
        values=values,
    )


def from_verified(event: VerifiedRequest) -> Notice:
    return _checked(event, "verified", {})


def from_review(event: ReviewRequest, rules: Rules) -> Notice | None:
    if not rules.needs_review:
        return None
    return Notice(
        request_id=event.request_id,
        event="needs_review",
        category=event.category,
        language=event.language,
        phone=event.contact.phone if event.contact else None,
        values={},
    )


def reasons_text(reasons: list[str], language: str, rules: Rules) -> str:
    words = rules.reasons.get(language) or rules.reasons.get(DEFAULT_LANGUAGE) or {}
    codes = [code.split(":", 1)[0] for code in reasons]
    texts = [words[code] for code in codes if code in words]
    if not texts:
        texts = [words.get("default", "")]
    separator = "；" if language == "zh" else "; "
    return separator.join(dict.fromkeys(t for t in texts if t))


def from_rejected(event: RejectedRequest, rules: Rules) -> Notice:
    duplicate = event.duplicate_of is not None
    return Notice(
        request_id=event.request_id,
        event="duplicate" if duplicate else "rejected",
        category=None,
        language=event.language,
        phone=event.contact.phone if event.contact else None,
        values={
            "duplicate_of": event.duplicate_of or "",
            "reasons_text": reasons_text(event.reasons, event.language, rules),
        },
    )


def department_name(department: str, language: str, rules: Rules) -> str:
    names = rules.departments.get(language) or rules.departments.get(DEFAULT_LANGUAGE) or {}
    return names.get(department, department)


def from_dispatch(job: DispatchJob, rules: Rules) -> Notice:
    """One message per leg: each names the service that will come and when."""
    values = {
        "department_name": department_name(job.department, job.language, rules),
        "acknowledge_by": local_time(job.acknowledge_by, rules),
        "resolve_by": local_time(job.resolve_by, rules),
    }
    return replace(
        _checked(job, "dispatched", values),
        leg=job.leg_id,
        team_id=job.team_id,
        department=job.department,
    )


def from_lifecycle(event: LifecycleEvent, rules: Rules) -> Notice | None:
    if event.status not in rules.lifecycle_events:
        return None
    # A language the event does not state is the schema's default, not the citizen's choice.
    language = event.language if "language" in event.model_fields_set else None
    asking = event.status == "needs_info"
    return Notice(
        request_id=event.request_id,
        event=event.status,
        category=event.category,
        language=language,
        phone=event.contact.phone if event.contact else None,
        # What the department asked for, in its words; every question is a message of its own.
        values={"department_name": "", **({"note": event.note or ""} if asking else {})},
        leg=event.event_id if asking else "",
        team_id=event.team_id,
        department=event.department,
    )


def info_link(base_url: str, request_id: str) -> str:
    """Where the citizen adds what a department asked for (route's endpoint)."""
    return f"{base_url.rstrip('/')}/v1/requests/{request_id}/info"


def message_values(
    notice: Notice, language: str, rules: Rules, *, survey_base_url: str, survey_secret: str
) -> dict[str, str]:
    city = rules.jurisdiction
    values = {
        "request_id": notice.request_id,
        "category": notice.category or "",
        "city": city.city_name(language),
        "hotline": city.hotline,
        "medical_emergency": city.medical_emergency,
        "survey_link": survey_link(
            survey_base_url, notice.request_id, secret=survey_secret, language=language
        ),
        **notice.values,
    }
    if notice.department and not values.get("department_name"):
        values["department_name"] = department_name(notice.department, language, rules)
    return values


# --- delivery -------------------------------------------------------------------------------


def notification_id(request_id: str, event: str, channel: str, leg: str = "") -> str:
    """One notification per (request, event, channel); dispatches once per leg."""
    return derive_id("notification", request_id, event, channel, leg)


def phone_hash(key: str, phone: str) -> str:
    """A keyed hash of the number (E.164, as ``shared.phones`` gives it): counts a citizen
    without storing the number."""
    digest = hmac.new(key.encode(), phone.encode(), hashlib.sha256)
    return digest.hexdigest()[:32]


def sign(secret: str, body: bytes) -> str:
    """The webhook signature: hex HMAC-SHA256 of the exact body bytes."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# --- call-back survey -----------------------------------------------------------------------

SurveyOutcome = Literal["closed", "reopened"]


def survey_outcome(satisfied: bool) -> tuple[SurveyOutcome, str]:
    """A satisfied citizen closes the request; an unsatisfied one reopens it (route escalates)."""
    return ("closed", "survey_satisfied") if satisfied else ("reopened", "survey_unsatisfied")


def satisfaction_key(team_id: str | None, category: str | None) -> str:
    return f"{team_id or 'unknown'}|{category or 'unknown'}"


def token_matches(presented: str | None, stored_hash: str | None) -> bool:
    """Whether the tracking token's SHA-256 is the one intake stored for the request."""
    if not presented or not stored_hash:
        return False
    return hmac.compare_digest(hashlib.sha256(presented.encode()).hexdigest(), stored_hash)


@dataclass(frozen=True, slots=True)
class SurveyTimers:
    """When an unanswered survey is reminded once, and when it closes the request (both from
    the moment the survey went out)."""

    reminder_after: timedelta
    close_after: timedelta

    def first_step(self, opened_at: datetime) -> tuple[Literal["remind", "close"], datetime]:
        """The timer a new survey starts with: the reminder (or, configured so, the close)."""
        if self.reminder_after < self.close_after:
            return "remind", opened_at + self.reminder_after
        return "close", opened_at + self.close_after
