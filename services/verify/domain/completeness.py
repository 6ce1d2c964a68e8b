"""Completeness: the fields a category needs, and descriptions that say nothing."""

from __future__ import annotations

from services.verify.domain.config import Rules
from shared.schemas import HelpRequest, Location
from shared.text import compact, fold


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


def description_problems(description: str, rules: Rules) -> list[str]:
    """Descriptions that say nothing: only punctuation and symbols, or one character repeated."""
    meaningful = compact(fold(description))
    if not meaningful:
        return ["empty_description"]
    if len(set(meaningful)) == 1 and len(meaningful) >= rules.repeated_min_length:
        return ["repeated_character"]
    return []
