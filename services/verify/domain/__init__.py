"""Verification rules: pure functions from a submitted request (and the recent history of the
same phone) to a decision. No I/O here; the rules, word lists and districts come from the
configuration files read by :func:`load_config`.

One module per check: ``phone``, ``place``, ``completeness``, ``duplicates`` (and floods),
``triage``; ``decision`` puts them together, ``events`` turns a decision into what verify
publishes, ``config`` reads the files.
"""

from services.verify.domain.completeness import description_problems, missing_fields
from services.verify.domain.config import (
    LOCATION_FIELDS,
    Config,
    District,
    Jurisdiction,
    KeywordRule,
    Rules,
    Triage,
    load_config,
    load_jurisdiction,
    load_rules,
    load_triage,
)
from services.verify.domain.decision import (
    PRIORITY_RANK,
    Correction,
    Corrections,
    Decision,
    Outcome,
    apply_corrections,
    decide,
    remembered_for_duplicates,
)
from services.verify.domain.duplicates import (
    History,
    HistoryEntry,
    find_duplicate,
    is_flood,
    normalise_description,
    similarity,
)
from services.verify.domain.events import (
    contact_of,
    rejected_event,
    review_event,
    verified_event,
    verified_lane,
)
from services.verify.domain.phone import PhoneCheck, normalise_phone
from services.verify.domain.place import (
    PlaceCheck,
    check_location,
    distance_km,
    match_district,
    nearest_district,
)
from services.verify.domain.triage import (
    PRIORITIES,
    SPECIAL_GROUPS,
    URGENT_PRIORITIES,
    TriageResult,
    triage,
)

__all__ = [
    "LOCATION_FIELDS",
    "PRIORITIES",
    "PRIORITY_RANK",
    "SPECIAL_GROUPS",
    "URGENT_PRIORITIES",
    "Config",
    "Correction",
    "Corrections",
    "Decision",
    "District",
    "History",
    "HistoryEntry",
    "Jurisdiction",
    "KeywordRule",
    "Outcome",
    "PhoneCheck",
    "PlaceCheck",
    "Rules",
    "Triage",
    "TriageResult",
    "apply_corrections",
    "check_location",
    "contact_of",
    "decide",
    "description_problems",
    "distance_km",
    "find_duplicate",
    "is_flood",
    "load_config",
    "load_jurisdiction",
    "load_rules",
    "load_triage",
    "match_district",
    "missing_fields",
    "nearest_district",
    "normalise_description",
    "normalise_phone",
    "rejected_event",
    "remembered_for_duplicates",
    "review_event",
    "similarity",
    "triage",
    "verified_event",
    "verified_lane",
]
