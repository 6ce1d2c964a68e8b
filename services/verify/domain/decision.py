"""The decision on one request: every check and triage, in order, to one outcome —
``verified``, ``needs_review`` (a human verifier looks at it), ``rejected`` (with reason codes)
or ``duplicate`` (the same person already asked for the same thing) — and what a verifier's
corrections make of it. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from services.verify.domain.completeness import description_problems, missing_fields
from services.verify.domain.config import Config
from services.verify.domain.duplicates import (
    History,
    find_duplicate,
    is_flood,
    normalise_description,
)
from services.verify.domain.phone import normalise_phone
from services.verify.domain.place import check_location, match_district
from services.verify.domain.triage import PRIORITIES, triage
from shared.schemas import Category, Priority, SpecialGroup, SubmittedRequest

Outcome = Literal["verified", "needs_review", "rejected", "duplicate"]


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: Outcome
    priority: Priority
    green_channel: bool
    phone: str | None  # E.164; None when the number is invalid
    district: str | None
    special_groups: tuple[SpecialGroup, ...] = ()
    reasons: tuple[str, ...] = ()  # triage reasons (why this priority)
    problems: tuple[str, ...] = ()  # reason codes of a rejection or a review
    duplicate_of: str | None = None

    @property
    def all_reasons(self) -> list[str]:
        return [*self.problems, *self.reasons]


def decide(submitted: SubmittedRequest, config: Config, history: History | None = None) -> Decision:
    """Check and triage one request."""
    history = history or History()
    request, rules = submitted.request, config.rules
    result = triage(request, config.triage)
    phone = normalise_phone(request.contact.phone, config.jurisdiction)
    place = check_location(request.location, config)

    def outcome(
        kind: Outcome, problems: Iterable[str], duplicate_of: str | None = None
    ) -> Decision:
        return Decision(
            outcome=kind,
            priority=result.priority,
            green_channel=result.green_channel,
            phone=phone.e164,
            district=place.district,
            special_groups=result.special_groups,
            reasons=result.reasons,
            problems=tuple(problems),
            duplicate_of=duplicate_of,
        )

    rejections = description_problems(request.description, rules)
    if phone.problem == "invalid_phone":
        rejections.insert(0, "invalid_phone")
    elif is_flood(
        history.any_category,
        request_id=submitted.request_id,
        at=submitted.submitted_at,
        rules=rules,
    ):
        rejections.append("flood")
    if rejections:
        return outcome("rejected", rejections)
    original = find_duplicate(
        normalise_description(request.description),
        request_id=submitted.request_id,
        at=submitted.submitted_at,
        history=history.same_category,
        rules=rules,
    )
    if original is not None:
        return outcome("duplicate", ["duplicate"], original)
    review = [*([phone.problem] if phone.problem else []), *place.problems]
    review.extend(f"incomplete:{f}" for f in missing_fields(request, rules))
    if review:
        return outcome("needs_review", review)
    return outcome("verified", ())


def remembered_for_duplicates(decision: Decision) -> bool:
    """Only requests that stand on their own can be the original of a later duplicate."""
    return decision.outcome in ("verified", "needs_review")


@dataclass(frozen=True, slots=True)
class Corrections:
    """What a verifier fixed before verifying (all optional)."""

    phone: str | None = None
    district: str | None = None
    category: Category | None = None
    priority: Priority | None = None


@dataclass(frozen=True, slots=True)
class Correction:
    decision: Decision
    category: Category
    problems: tuple[str, ...] = field(default=())


def apply_corrections(
    submitted: SubmittedRequest, decision: Decision, fixes: Corrections, config: Config
) -> Correction:
    """The decision a verifier's corrections lead to; problems name corrections that are
    themselves invalid (an unusable phone, a district outside the jurisdiction)."""
    problems: list[str] = []
    phone = decision.phone
    if fixes.phone is not None:
        check = normalise_phone(fixes.phone, config.jurisdiction)
        if check.e164 is None:
            problems.append("invalid_phone")
        phone = check.e164
    district = decision.district
    if fixes.district is not None:
        found = match_district(fixes.district, config.jurisdiction)
        if found is None:
            problems.append("unknown_district")
        district = found.code if found else None
    reasons = list(decision.reasons)
    reasons.extend(
        f"corrected:{name}"
        for name in ("phone", "district", "category", "priority")
        if getattr(fixes, name) is not None
    )
    if phone is None and "invalid_phone" not in problems:
        problems.append("invalid_phone")
    corrected = Decision(
        outcome="verified",
        priority=fixes.priority or decision.priority,
        green_channel=decision.green_channel
        or (fixes.priority or decision.priority) in config.triage.green_channel_priorities,
        phone=phone,
        district=district,
        special_groups=decision.special_groups,
        reasons=tuple(reasons),
    )
    return Correction(corrected, fixes.category or submitted.request.category, tuple(problems))


PRIORITY_RANK: dict[str, int] = {p: i for i, p in enumerate(PRIORITIES, start=1)}
