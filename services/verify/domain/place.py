"""Place checks: the district a request names or whose coordinates it gives, against the
jurisdiction file, and what is wrong with the place (unknown, outside, contradictory)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import cast

from services.verify.domain.config import Config
from shared.jurisdiction import District, Jurisdiction, name_keys
from shared.schemas import Location
from shared.text import compact, fold


def match_district(name: str, jurisdiction: Jurisdiction) -> District | None:
    """The district a free-text name refers to (Chinese, pinyin, English; suffix optional)."""
    compacted = compact(fold(name))
    candidates = [compacted]
    for prefix in jurisdiction.city_prefixes:
        if compacted.startswith(prefix) and len(compacted) > len(prefix):
            candidates.append(compacted[len(prefix) :])
    for candidate in candidates:
        for key in name_keys(candidate, jurisdiction.suffixes):
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
