"""Verification rules: pure functions from a submitted request (and the recent history of the
same phone) to a decision. No I/O here; the rules, word lists and districts come from the
configuration files read by :func:`load_config`.

Outcomes: ``verified``, ``needs_review`` (a human verifier looks at it), ``rejected`` (with
reason codes) and ``duplicate`` (the same person already asked for the same thing).
"""

from __future__ import annotations

import math
import re
import tomllib
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal, cast

import phonenumbers
from rapidfuzz import fuzz

from shared.schemas import (
    CATEGORIES,
    Category,
    HelpRequest,
    Location,
    NormalisedContact,
    NormalisedLocation,
    Priority,
    RejectedRequest,
    ReviewRequest,
    SpecialGroup,
    SubmittedRequest,
    VerifiedRequest,
)
from shared.topics import Topic

Outcome = Literal["verified", "needs_review", "rejected", "duplicate"]
PRIORITIES: tuple[Priority, ...] = ("P1", "P2", "P3", "P4")
SPECIAL_GROUPS: tuple[SpecialGroup, ...] = (
    "pregnant",
    "elderly",
    "child",
    "disabled",
    "chronic_illness",
    "living_alone",
)
LOCATION_FIELDS = frozenset({"location", "district", "coordinates", "address", "name"})


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True, slots=True)
class District:
    code: str
    name_zh: str
    name_en: str
    lat: float
    lon: float
    radius_km: float


@dataclass(frozen=True, slots=True)
class Jurisdiction:
    name: str
    phone_region: str
    country_code: int
    area_code: str
    local_number_digits: int
    lat_min: float
    lat_max: float
    lon_min: float
    lon_max: float
    districts: tuple[District, ...]
    lookup: dict[str, str]  # normalised name or alias → district code
    city_prefixes: tuple[str, ...]
    suffixes: tuple[str, ...]

    def district(self, code: str) -> District:
        for district in self.districts:
            if district.code == code:
                return district
        raise KeyError(code)

    def contains(self, lat: float, lon: float) -> bool:
        return self.lat_min <= lat <= self.lat_max and self.lon_min <= lon <= self.lon_max


@dataclass(frozen=True, slots=True)
class Rules:
    completeness: dict[str, tuple[str, ...]]
    contradiction_km: float
    repeated_min_length: int
    flood_max_requests: int
    flood_window: timedelta
    duplicate_window: timedelta
    duplicate_threshold: float
    min_partial_chars: int
    history_limit: int
    claim_ttl: timedelta
    review_list_limit: int


@dataclass(frozen=True, slots=True)
class KeywordRule:
    id: str
    priority: Priority | None
    groups: tuple[SpecialGroup, ...]
    needs_group: bool
    patterns: tuple[re.Pattern[str], ...]


@dataclass(frozen=True, slots=True)
class Triage:
    categories: dict[str, Priority]
    green_groups: frozenset[str]
    group_priority: Priority
    group_categories: frozenset[str]
    green_channel_priorities: frozenset[str]
    keywords: tuple[KeywordRule, ...]


@dataclass(frozen=True, slots=True)
class Config:
    jurisdiction: Jurisdiction
    rules: Rules
    triage: Triage


def _read(path: Path) -> dict[str, Any]:
    return tomllib.loads(path.read_text(encoding="utf-8"))


def _priority(value: object, where: str) -> Priority:
    if value not in PRIORITIES:
        raise ValueError(f"{where}: unknown priority {value!r}")
    return value


def _group(value: object, where: str) -> SpecialGroup:
    if value not in SPECIAL_GROUPS:
        raise ValueError(f"{where}: unknown special group {value!r}")
    return value


def load_jurisdiction(path: Path) -> Jurisdiction:
    data = _read(path)
    suffixes = tuple(_fold(s) for s in data.get("suffixes", ()))
    prefixes = tuple(_fold(s) for s in data.get("city_prefixes", ()))
    districts: list[District] = []
    lookup: dict[str, str] = {}
    for raw in data["districts"]:
        district = District(
            code=str(raw["code"]),
            name_zh=str(raw["name_zh"]),
            name_en=str(raw["name_en"]),
            lat=float(raw["lat"]),
            lon=float(raw["lon"]),
            radius_km=float(raw.get("radius_km", 0.0)),
        )
        districts.append(district)
        names = [district.code, district.name_zh, district.name_en, *raw.get("aliases", ())]
        for name in names:
            for key in _name_keys(_fold(str(name)), suffixes):
                owner = lookup.setdefault(key, district.code)
                if owner != district.code and key == _fold(str(name)):
                    raise ValueError(f"{path}: {name!r} names both {owner} and {district.code}")
    bbox = data["bbox"]
    return Jurisdiction(
        name=str(data["name"]),
        phone_region=str(data.get("phone_region", "CN")),
        country_code=int(data.get("country_code", 86)),
        area_code=str(data["area_code"]),
        local_number_digits=int(data.get("local_number_digits", 8)),
        lat_min=float(bbox["lat_min"]),
        lat_max=float(bbox["lat_max"]),
        lon_min=float(bbox["lon_min"]),
        lon_max=float(bbox["lon_max"]),
        districts=tuple(districts),
        lookup=lookup,
        city_prefixes=prefixes,
        suffixes=suffixes,
    )


def load_rules(path: Path) -> Rules:
    data = _read(path)
    completeness: dict[str, tuple[str, ...]] = {}
    for category, fields in data.get("completeness", {}).items():
        if category not in CATEGORIES:
            raise ValueError(f"{path}: unknown category {category!r} in [completeness]")
        unknown = set(fields) - LOCATION_FIELDS
        if unknown:
            raise ValueError(f"{path}: unknown fields {sorted(unknown)} for {category}")
        completeness[category] = tuple(fields)
    abuse, dup, review = data["abuse"], data["duplicates"], data.get("review", {})
    rules = Rules(
        completeness=completeness,
        contradiction_km=float(data.get("location", {}).get("contradiction_km", 15.0)),
        repeated_min_length=int(abuse.get("repeated_min_length", 3)),
        flood_max_requests=int(abuse["flood_max_requests"]),
        flood_window=timedelta(minutes=float(abuse["flood_window_minutes"])),
        duplicate_window=timedelta(hours=float(dup.get("window_hours", 24))),
        duplicate_threshold=float(dup["threshold"]),
        min_partial_chars=int(dup.get("min_partial_chars", 6)),
        history_limit=int(dup.get("history_limit", 20)),
        claim_ttl=timedelta(minutes=float(review.get("claim_minutes", 15))),
        review_list_limit=int(review.get("list_limit", 100)),
    )
    if rules.history_limit <= rules.flood_max_requests:
        raise ValueError(f"{path}: history_limit must exceed flood_max_requests")
    return rules


def load_triage(path: Path) -> Triage:
    data = _read(path)
    categories = {
        str(c): _priority(p, f"{path} [categories].{c}") for c, p in data["categories"].items()
    }
    missing = set(CATEGORIES) - set(categories)
    if missing:
        raise ValueError(f"{path}: no priority for categories {sorted(missing)}")
    groups = data.get("special_groups", {})
    keywords = []
    for raw in data.get("keywords", ()):
        where = f"{path} keyword {raw.get('id')!r}"
        words = [_fold(str(w)) for w in raw["words"]]
        keywords.append(
            KeywordRule(
                id=str(raw["id"]),
                priority=_priority(raw["priority"], where) if "priority" in raw else None,
                groups=tuple(_group(g, where) for g in raw.get("groups", ())),
                needs_group=bool(raw.get("needs_group", False)),
                patterns=tuple(_word_pattern(w) for w in words if w),
            )
        )
    return Triage(
        categories=categories,
        green_groups=frozenset(_group(g, str(path)) for g in groups.get("green_channel", ())),
        group_priority=_priority(groups.get("priority", "P2"), f"{path} [special_groups]"),
        group_categories=frozenset(groups.get("categories", ())),
        green_channel_priorities=frozenset(
            _priority(p, str(path)) for p in data.get("green_channel_priorities", ())
        ),
        keywords=tuple(keywords),
    )


def load_config(
    config_dir: Path,
    *,
    jurisdiction_file: str = "jurisdiction.toml",
    rules_file: str = "verify.toml",
    triage_file: str = "triage.toml",
) -> Config:
    return Config(
        jurisdiction=load_jurisdiction(config_dir / jurisdiction_file),
        rules=load_rules(config_dir / rules_file),
        triage=load_triage(config_dir / triage_file),
    )


# --------------------------------------------------------------------------- text helpers


def _fold(text: str) -> str:
    """Width-, case- and accent-insensitive form: full-width → ASCII, ё → е, tone marks gone."""
    text = unicodedata.normalize("NFKC", text).casefold().replace("ё", "е")
    decomposed = unicodedata.normalize("NFD", text)
    # Drop combining marks (pinyin tones, "й" → "и" is harmless for matching), then recompose.
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return unicodedata.normalize("NFC", stripped)


def _is_cjk(char: str) -> bool:
    return "\u3400" <= char <= "\u9fff" or "\uf900" <= char <= "\ufaff"


def _word_pattern(word: str) -> re.Pattern[str]:
    """Chinese words match anywhere; other words at the start of a word (prefix for endings)."""
    if any(_is_cjk(c) for c in word):
        return re.compile(re.escape(word))
    return re.compile(r"(?<!\w)" + re.escape(word))


def _compact(text: str) -> str:
    """Letters and digits only (no spaces, dashes, punctuation)."""
    return "".join(c for c in text if c.isalnum())


# --------------------------------------------------------------------------- phone numbers


@dataclass(frozen=True, slots=True)
class PhoneCheck:
    e164: str | None
    problem: Literal["invalid_phone", "foreign_phone"] | None = None


_PHONE_SEPARATORS = re.compile(r"[\s\-‐‑–—().\[\]/·•_]+")


def normalise_phone(raw: str, jurisdiction: Jurisdiction) -> PhoneCheck:
    """E.164 form of a phone number typed in any of the usual shapes.

    Accepts full-width digits, spaces, dashes, parentheses, ``+86`` and ``0086`` prefixes and
    local numbers dialled without the area code (taken as the jurisdiction's own area).
    """
    text = _PHONE_SEPARATORS.sub("", unicodedata.normalize("NFKC", raw))
    if not re.fullmatch(r"\+?\d{3,20}", text):
        return PhoneCheck(None, "invalid_phone")
    local = not text.startswith("+") and len(text) == jurisdiction.local_number_digits
    if local and text[0] not in "01":  # a local number: the city's area code is implied
        text = f"0{jurisdiction.area_code}{text}"
    try:
        number = phonenumbers.parse(text, jurisdiction.phone_region)
    except phonenumbers.NumberParseException:
        return PhoneCheck(None, "invalid_phone")
    if not phonenumbers.is_valid_number(number):
        return PhoneCheck(None, "invalid_phone")
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if number.country_code != jurisdiction.country_code:
        return PhoneCheck(e164, "foreign_phone")
    return PhoneCheck(e164)


# --------------------------------------------------------------------------- places


def _name_keys(folded: str, suffixes: Sequence[str]) -> list[str]:
    """A name and its forms without a suffix ("金水区" → "金水区", "金水")."""
    compact = _compact(folded)
    keys = [compact] if compact else []
    for suffix in suffixes:
        if compact.endswith(suffix) and len(compact) > len(suffix):
            keys.append(compact[: -len(suffix)])
    return keys


def match_district(name: str, jurisdiction: Jurisdiction) -> District | None:
    """The district a free-text name refers to (Chinese, pinyin, English; suffix optional)."""
    compact = _compact(_fold(name))
    candidates = [compact]
    for prefix in jurisdiction.city_prefixes:
        if compact.startswith(prefix) and len(compact) > len(prefix):
            candidates.append(compact[len(prefix) :])
    for candidate in candidates:
        for key in _name_keys(candidate, jurisdiction.suffixes):
            code = jurisdiction.lookup.get(key)
            if code is not None:
                return jurisdiction.district(code)
    return None


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(a))


def nearest_district(lat: float, lon: float, jurisdiction: Jurisdiction) -> District:
    return min(jurisdiction.districts, key=lambda d: distance_km(lat, lon, d.lat, d.lon))


@dataclass(frozen=True, slots=True)
class PlaceCheck:
    district: str | None
    problems: tuple[str, ...] = ()


def check_location(location: Location | None, config: Config) -> PlaceCheck:
    """The district code of a request's place, and what is wrong with it."""
    jurisdiction, rules = config.jurisdiction, config.rules
    if location is None:
        return PlaceCheck(None)
    named = match_district(location.district, jurisdiction) if location.district else None
    has_coords = location.lat is not None and location.lon is not None
    problems: list[str] = []
    if location.district and named is None:
        problems.append("unknown_district")
    if not has_coords:
        return PlaceCheck(named.code if named else None, tuple(problems))
    lat, lon = cast(float, location.lat), cast(float, location.lon)
    if not jurisdiction.contains(lat, lon):
        problems.append("outside_jurisdiction")
        return PlaceCheck(named.code if named else None, tuple(problems))
    nearest = nearest_district(lat, lon, jurisdiction)
    if named is None:
        # Coordinates alone place the request; with an unknown name they are a hint for the
        # verifier, who still looks at it.
        return PlaceCheck(nearest.code, tuple(problems))
    limit = max(rules.contradiction_km, named.radius_km)
    if nearest.code != named.code and distance_km(lat, lon, named.lat, named.lon) > limit:
        problems.append("contradictory_location")
    return PlaceCheck(named.code, tuple(problems))


def missing_fields(request: HelpRequest, rules: Rules) -> list[str]:
    """Fields the request's category needs and the request lacks."""
    location = request.location or Location()
    has = {
        "district": bool(location.district),
        "coordinates": location.lat is not None and location.lon is not None,
        "address": bool(location.address),
        "name": bool(request.contact.name),
    }
    has["location"] = has["district"] or has["coordinates"] or has["address"]
    return [f for f in rules.completeness.get(request.category, ()) if not has[f]]


# --------------------------------------------------------------------------- abuse


def description_problems(description: str, rules: Rules) -> list[str]:
    """Descriptions that say nothing: only punctuation and symbols, or one character repeated."""
    meaningful = _compact(_fold(description))
    if not meaningful:
        return ["empty_description"]
    if len(set(meaningful)) == 1 and len(meaningful) >= rules.repeated_min_length:
        return ["repeated_character"]
    return []


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One earlier request of the same phone (and category, for duplicates)."""

    request_id: str
    submitted_at: datetime
    text: str = ""  # the normalised description (duplicate index only)


def _earlier(
    entries: Iterable[HistoryEntry], request_id: str, at: datetime, window: timedelta
) -> list[HistoryEntry]:
    """Entries submitted within ``window`` before ``at``, other than the request itself (so a
    redelivered request is judged against the same history as the first time)."""
    return [
        e
        for e in entries
        if e.request_id != request_id
        and at - window <= e.submitted_at
        and (e.submitted_at, e.request_id) < (at, request_id)
    ]


def is_flood(
    activity: Sequence[HistoryEntry], *, request_id: str, at: datetime, rules: Rules
) -> bool:
    """More than the allowed number of requests from one phone within the flood window."""
    return len(_earlier(activity, request_id, at, rules.flood_window)) >= rules.flood_max_requests


# --------------------------------------------------------------------------- duplicates


def normalise_description(description: str) -> str:
    """Folded text, punctuation replaced by spaces, whitespace collapsed; at most 500 chars."""
    folded = _fold(description)
    words = "".join(c if c.isalnum() else " " for c in folded).split()
    return " ".join(words)[:500]


def similarity(a: str, b: str, *, min_partial_chars: int = 6) -> float:
    """0–100: how alike two normalised descriptions are.

    Chinese is compared character by character and clause by clause (plus containment for
    texts long enough to mean something); space-separated languages by their word sets, so
    word order and extra words matter less.
    """
    if not a or not b:
        return 0.0
    if any(_is_cjk(c) for c in a + b):
        x, y = a.replace(" ", ""), b.replace(" ", "")
        # Clauses (split at punctuation) in any order, then character by character.
        score = max(float(fuzz.token_sort_ratio(a, b)), float(fuzz.ratio(x, y)))
        if min(len(x), len(y)) >= min_partial_chars:
            score = max(score, float(fuzz.partial_ratio(x, y)))
        return score
    return float(fuzz.token_set_ratio(a, b))


def find_duplicate(
    text: str,
    *,
    request_id: str,
    at: datetime,
    history: Sequence[HistoryEntry],
    rules: Rules,
) -> str | None:
    """The id of the earliest earlier request this one repeats, if any."""
    candidates = sorted(
        _earlier(history, request_id, at, rules.duplicate_window),
        key=lambda e: (e.submitted_at, e.request_id),
    )
    for entry in candidates:
        score = similarity(text, entry.text, min_partial_chars=rules.min_partial_chars)
        if score >= rules.duplicate_threshold:
            return entry.request_id
    return None


# --------------------------------------------------------------------------- triage


@dataclass(frozen=True, slots=True)
class TriageResult:
    priority: Priority
    green_channel: bool
    special_groups: tuple[SpecialGroup, ...]
    reasons: tuple[str, ...]


def triage(request: HelpRequest, rules: Triage) -> TriageResult:
    """Priority and green channel from the category, special groups and keywords."""
    text = _fold(request.description)
    priority = rules.categories[request.category]
    reasons = [f"category:{request.category}"]
    groups: list[SpecialGroup] = list(dict.fromkeys(request.special_groups))
    fired: list[KeywordRule] = [
        k for k in rules.keywords if any(p.search(text) for p in k.patterns)
    ]
    for rule in fired:
        groups.extend(g for g in rule.groups if g not in groups)
    for rule in fired:
        if rule.needs_group and not groups:
            continue
        reasons.append(f"keyword:{rule.id}")
        if rule.priority is not None:
            priority = min(priority, rule.priority)
    reasons.extend(f"special_group:{g}" for g in groups)
    special = [g for g in groups if g in rules.green_groups]
    if special and request.category in rules.group_categories:
        priority = min(priority, rules.group_priority)
    green = bool(special) or priority in rules.green_channel_priorities
    return TriageResult(priority, green, tuple(groups), tuple(reasons))


# --------------------------------------------------------------------------- the decision


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


@dataclass(frozen=True, slots=True)
class History:
    """What verify remembers about the phone: recent requests of the same category (for
    duplicates) and of any category (for the flood rule)."""

    same_category: tuple[HistoryEntry, ...] = ()
    any_category: tuple[HistoryEntry, ...] = ()


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


# --------------------------------------------------------------------------- events


def contact_of(submitted: SubmittedRequest, decision: Decision) -> NormalisedContact | None:
    """The contact to tell the citizen through; None when the phone is unusable."""
    if decision.phone is None:
        return None
    return NormalisedContact(name=submitted.request.contact.name, phone=decision.phone)


def verified_event(
    submitted: SubmittedRequest,
    decision: Decision,
    *,
    at: datetime,
    verified_by: str = "verify",
    category: Category | None = None,
) -> VerifiedRequest:
    req = submitted.request
    location = req.location or Location()
    if decision.phone is None:
        raise ValueError("a verified request needs a valid phone")
    return VerifiedRequest(
        request_id=submitted.request_id,
        submitted_at=submitted.submitted_at,
        verified_at=at,
        channel=submitted.channel,
        category=category or req.category,
        description=req.description,
        contact=NormalisedContact(name=req.contact.name, phone=decision.phone),
        location=NormalisedLocation(
            district=decision.district,
            address=location.address,
            lat=location.lat,
            lon=location.lon,
        ),
        special_groups=list(decision.special_groups),
        language=req.language,
        priority=decision.priority,
        green_channel=decision.green_channel,
        reasons=list(decision.reasons),
        verified_by=verified_by,
    )


URGENT_PRIORITIES: frozenset[Priority] = frozenset({"P1", "P2"})


def verified_lane(decision: Decision) -> Topic:
    """The topic a verified request goes on: urgent ones (P1, P2 or green channel) take the
    priority lane, so route never dispatches them behind a backlog of ordinary requests."""
    if decision.green_channel or decision.priority in URGENT_PRIORITIES:
        return Topic.VERIFIED_PRIORITY
    return Topic.VERIFIED


def review_event(submitted: SubmittedRequest, decision: Decision, *, at: datetime) -> ReviewRequest:
    return ReviewRequest(
        request_id=submitted.request_id,
        submitted_at=submitted.submitted_at,
        flagged_at=at,
        category=submitted.request.category,
        priority=decision.priority,
        green_channel=decision.green_channel,
        reasons=decision.all_reasons,
        language=submitted.request.language,
        contact=contact_of(submitted, decision),
    )


def rejected_event(
    submitted: SubmittedRequest,
    decision: Decision,
    *,
    at: datetime,
    rejected_by: str = "verify",
) -> RejectedRequest:
    return RejectedRequest(
        request_id=submitted.request_id,
        submitted_at=submitted.submitted_at,
        rejected_at=at,
        reasons=list(decision.problems),
        duplicate_of=decision.duplicate_of,
        language=submitted.request.language,
        rejected_by=rejected_by,
        contact=contact_of(submitted, decision),
    )


# --------------------------------------------------------------------------- human review


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
