"""Event and request schemas of the public contract (v1).

Every topic's value is one of these models serialised as UTF-8 JSON. The JSON Schemas under
``contracts/`` are generated from them and checked against them in the tests.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from shared.topics import Department

Category = Literal[
    "epidemic_policy",
    "transport",
    "medical",
    "education",
    "food_supply",
    "health_code",
    "suggestion",
]
SpecialGroup = Literal[
    "pregnant", "elderly", "child", "disabled", "chronic_illness", "living_alone"
]
Language = Literal["zh", "en", "ru"]
Priority = Literal["P1", "P2", "P3", "P4"]
# The values of each, in the order the pages and the Open311 service list show them.
CATEGORIES: tuple[Category, ...] = get_args(Category)
SPECIAL_GROUPS: tuple[SpecialGroup, ...] = get_args(SpecialGroup)
PRIORITIES: tuple[Priority, ...] = get_args(Priority)
Channel = Literal["web", "open311", "partner_http", "partner_topic"]
RequestStatus = Literal[
    "submitted",
    "verified",
    "needs_review",
    "rejected",
    "duplicate",
    "dispatched",
    "acknowledged",
    "in_progress",
    "resolved",
    "closed",
    "escalated",
    "reopened",
    # A department asked the citizen for more (on the timeline; the status does not change).
    "needs_info",
]
DepartmentStatus = Literal["acknowledged", "in_progress", "resolved", "rejected", "needs_info"]
DeliveryStatus = Literal["sent", "failed"]

Text = Annotated[str, StringConstraints(strip_whitespace=True)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Contact(_Model):
    name: Annotated[Text, StringConstraints(max_length=100)] | None = None
    phone: Annotated[Text, StringConstraints(min_length=3, max_length=40)]


class Location(_Model):
    district: Annotated[Text, StringConstraints(max_length=100)] | None = None
    address: Annotated[Text, StringConstraints(max_length=500)] | None = None
    lat: Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)] | None = None
    lon: Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)] | None = None


class HelpRequest(_Model):
    """What a citizen, an app or a partner submits."""

    category: Category
    description: Annotated[Text, StringConstraints(min_length=1, max_length=2000)]
    contact: Contact
    location: Location | None = None
    special_groups: Annotated[list[SpecialGroup], Field(max_length=6)] = []
    language: Language = "zh"


class PartnerHelpRequest(HelpRequest):
    """A partner agency's request: the same body plus who sent it and its own id."""

    partner_id: Annotated[Text, StringConstraints(min_length=1, max_length=64)]
    external_id: Annotated[Text, StringConstraints(min_length=1, max_length=128)]


class SubmittedRequest(_Model):
    """Value on ``help.requests.submitted``: an accepted request, as it came in."""

    request_id: str
    submitted_at: datetime
    channel: Channel
    client_id: str | None = None
    partner_id: str | None = None
    external_id: str | None = None
    tracking_token_hash: str
    request: HelpRequest


class NormalisedContact(_Model):
    name: str | None = None
    phone: str  # E.164 after verification, e.g. +8613800138000


class NormalisedLocation(_Model):
    district: str | None = None  # district code from the jurisdiction file, e.g. "jinshui"
    address: str | None = None
    lat: float | None = None
    lon: float | None = None


class VerifiedRequest(_Model):
    """Value on ``help.requests.verified``: a checked, triaged request."""

    request_id: str
    submitted_at: datetime
    verified_at: datetime
    channel: Channel
    category: Category
    description: str
    contact: NormalisedContact
    location: NormalisedLocation
    special_groups: list[SpecialGroup] = []
    language: Language = "zh"
    priority: Priority
    green_channel: bool = False
    reasons: list[str] = []
    verified_by: str = "verify"


class ReviewRequest(_Model):
    """Value on ``help.requests.review``: a request a human verifier must look at."""

    request_id: str
    submitted_at: datetime
    flagged_at: datetime
    category: Category
    priority: Priority
    green_channel: bool = False
    reasons: list[str]
    language: Language = "zh"
    contact: NormalisedContact | None = None  # for notify; never logged


class RejectedRequest(_Model):
    """Value on ``help.requests.rejected``: a request refused, with reason codes."""

    request_id: str
    submitted_at: datetime
    rejected_at: datetime
    reasons: list[str]
    duplicate_of: str | None = None
    language: Language = "zh"
    rejected_by: str = "verify"
    contact: NormalisedContact | None = None  # for notify; never logged


class DispatchJob(_Model):
    """Value on ``help.dispatch.<department>``: one leg of a request, for one team."""

    leg_id: str
    request_id: str
    department: Department
    team_id: str
    priority: Priority
    green_channel: bool = False
    category: Category
    description: str
    contact: NormalisedContact
    location: NormalisedLocation
    special_groups: list[SpecialGroup] = []
    language: Language = "zh"
    submitted_at: datetime
    dispatched_at: datetime
    acknowledge_by: datetime
    resolve_by: datetime
    rule_version: str
    rule_id: str
    attempt: int = 1
    reason: str | None = None


class StatusEvent(BaseModel):
    """Value on ``help.status``: a department's report on a request or one of its legs."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    event_id: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    request_id: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    department: Department
    status: DepartmentStatus
    leg_id: str | None = None
    note: Annotated[str, StringConstraints(max_length=2000)] | None = None
    actor: Annotated[str, StringConstraints(max_length=128)] | None = None
    occurred_at: datetime


class NotificationRecord(_Model):
    """Value on ``help.notifications``: the outcome of one delivery attempt to a citizen."""

    notification_id: str
    request_id: str
    event: str
    channel: str
    status: DeliveryStatus
    language: Language = "zh"
    attempt: int = 1
    at: datetime
    error: str | None = None


class LifecycleEvent(_Model):
    """Value on ``help.requests.lifecycle``: a request-level state change after dispatch.

    Route derives these from the legs (acknowledged, in_progress, resolved when every leg is,
    escalated on a missed deadline or a second rejection); notify publishes ``closed`` or
    ``reopened`` from the call-back survey.
    """

    event_id: str
    request_id: str
    status: RequestStatus
    at: datetime
    actor: str
    reason: str | None = None
    leg_id: str | None = None
    department: Department | None = None
    team_id: str | None = None
    category: Category | None = None
    priority: Priority | None = None
    language: Language = "zh"
    contact: NormalisedContact | None = None  # for notify; never logged
    # needs_info: what the department asked the citizen for, in its words (never logged).
    note: Annotated[str, StringConstraints(max_length=2000)] | None = None


class InfoAdded(_Model):
    """On ``help.dispatch.<department>`` with ``ce_type`` ``city.help.leg.info_added.v1``: what
    the citizen added after the department reported ``needs_info`` on the leg."""

    event_id: str
    request_id: str
    leg_id: str
    department: Department
    team_id: str
    asked_event_id: str  # the department's needs_info status event this answers
    text: Annotated[str, StringConstraints(min_length=1, max_length=2000)]
    added_at: datetime


class SurveyAnswer(BaseModel):
    """The citizen's answer to the call-back (回访) survey, over HTTP or on help.partner.inbound."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    request_id: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    satisfied: bool
    comment: Annotated[str, StringConstraints(max_length=1000)] | None = None
    answered_at: datetime | None = None
