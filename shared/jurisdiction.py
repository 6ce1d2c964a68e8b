"""The city the pipeline serves, from its data file (``config/jurisdiction.toml``).

Every service reads the same file: its name in each language (notify's messages), its country
and area code (every phone number), its time zone (deadlines shown to citizens) and its
districts (verify's place checks, intake's Open311 attribute). Another city replaces the file,
not the code; ``CITYHELP_JURISDICTION_FILE`` points at it.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from shared.text import compact, fold

LANGUAGES = ("zh", "en", "ru")


@dataclass(frozen=True, slots=True)
class District:
    code: str
    name_zh: str
    name_en: str
    lat: float
    lon: float
    radius_km: float
    names: Mapping[str, str] = field(default_factory=dict)  # by language

    def label(self) -> str:
        """How a form offers it: "中文 / English" (one name when both are the same)."""
        if self.name_zh == self.name_en:
            return self.name_en
        return f"{self.name_zh} / {self.name_en}"


@dataclass(frozen=True, slots=True)
class Jurisdiction:
    code: str
    name: str
    phone_region: str
    country_code: int
    area_code: str
    local_number_digits: int
    time_zone: str
    lat_min: float
    lat_max: float
    lon_min: float
    lon_max: float
    districts: tuple[District, ...]
    lookup: dict[str, str]  # normalised name or alias → district code
    city_prefixes: tuple[str, ...]
    suffixes: tuple[str, ...]
    names: Mapping[str, str] = field(default_factory=dict)  # the city's name by language
    hotline: str = ""
    medical_emergency: str = ""

    def district(self, code: str) -> District:
        for district in self.districts:
            if district.code == code:
                return district
        raise KeyError(code)

    def contains(self, lat: float, lon: float) -> bool:
        return self.lat_min <= lat <= self.lat_max and self.lon_min <= lon <= self.lon_max

    def city_name(self, language: str) -> str:
        """The city's name in a citizen's language (the English name when none is given)."""
        return self.names.get(language) or self.name

    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)


def name_keys(folded: str, suffixes: Sequence[str]) -> list[str]:
    """A name and its forms without a suffix ("金水区" → "金水区", "金水")."""
    compacted = compact(folded)
    keys = [compacted] if compacted else []
    for suffix in suffixes:
        if compacted.endswith(suffix) and len(compacted) > len(suffix):
            keys.append(compacted[: -len(suffix)])
    return keys


def _district(raw: Mapping[str, Any]) -> District:
    names = {str(k): str(v) for k, v in raw.get("names", {}).items()}
    name_en = str(raw["name_en"])
    name_zh = str(raw.get("name_zh", name_en))
    names.setdefault("en", name_en)
    names.setdefault("zh", name_zh)
    return District(
        code=str(raw["code"]),
        name_zh=name_zh,
        name_en=name_en,
        lat=float(raw["lat"]),
        lon=float(raw["lon"]),
        radius_km=float(raw.get("radius_km", 0.0)),
        names=names,
    )


def load_jurisdiction(path: Path) -> Jurisdiction:
    """The jurisdiction file; a name that points at two districts, an unknown time zone or a
    missing field stops the service at start."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    suffixes = tuple(fold(s) for s in data.get("suffixes", ()))
    prefixes = tuple(fold(s) for s in data.get("city_prefixes", ()))
    districts: list[District] = []
    lookup: dict[str, str] = {}
    for raw in data["districts"]:
        district = _district(raw)
        districts.append(district)
        names = [district.code, *district.names.values(), *raw.get("aliases", ())]
        for name in names:
            for key in name_keys(fold(str(name)), suffixes):
                owner = lookup.setdefault(key, district.code)
                if owner != district.code and key == fold(str(name)):
                    raise ValueError(f"{path}: {name!r} names both {owner} and {district.code}")
    bbox = data["bbox"]
    time_zone = str(data["time_zone"])
    ZoneInfo(time_zone)  # an unknown zone fails here, not in the first message
    city_names = {str(k): str(v) for k, v in data.get("names", {}).items()}
    return Jurisdiction(
        code=str(data.get("code", str(data["name"]).casefold())),
        name=str(data["name"]),
        phone_region=str(data["phone_region"]),
        country_code=int(data["country_code"]),
        area_code=str(data["area_code"]),
        local_number_digits=int(data.get("local_number_digits", 8)),
        time_zone=time_zone,
        lat_min=float(bbox["lat_min"]),
        lat_max=float(bbox["lat_max"]),
        lon_min=float(bbox["lon_min"]),
        lon_max=float(bbox["lon_max"]),
        districts=tuple(districts),
        lookup=lookup,
        city_prefixes=prefixes,
        suffixes=suffixes,
        names=city_names,
        hotline=str(data.get("hotline", "")),
        medical_emergency=str(data.get("medical_emergency", "")),
    )
