"""The citizen's request form: its fields turned into the JSON API's body, and the API's
validation problems turned back into messages next to their fields. Pure functions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from pydantic import ValidationError

from shared.jurisdiction import Jurisdiction
from shared.web import Translator

# The form's field names, in page order (an error summary lists them in this order).
FIELDS: Final = (
    "category",
    "special_groups",
    "district",
    "address",
    "location",
    "phone",
    "name",
    "description",
)
# Where a problem of the JSON body is shown on the form.
_FIELD_OF: Final = {
    ("category",): "category",
    ("description",): "description",
    ("contact", "phone"): "phone",
    ("contact", "name"): "name",
    ("location", "district"): "district",
    ("location", "address"): "address",
    ("location", "lat"): "location",
    ("location", "lon"): "location",
    ("special_groups",): "special_groups",
}


def _text(form: Mapping[str, Any], name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def request_body(
    form: Mapping[str, Any], groups: Sequence[str], *, language: str
) -> dict[str, Any]:
    """The body ``POST /v1/requests`` would get for this form (empty optional fields left out)."""
    location = {
        key: _text(form, key) for key in ("district", "address", "lat", "lon") if _text(form, key)
    }
    contact = {"phone": _text(form, "phone")}
    if _text(form, "name"):
        contact["name"] = _text(form, "name")
    body: dict[str, Any] = {
        "category": _text(form, "category"),
        "description": _text(form, "description"),
        "contact": contact,
        "special_groups": list(groups),
        "language": language,
    }
    if location:
        body["location"] = location
    if not body["category"]:
        del body["category"]
    return body


def field_errors(exc: ValidationError, _: Translator) -> dict[str, str]:
    """One message per form field, in the page's language, for the body's problems."""
    found: dict[str, str] = {}
    for err in exc.errors(include_url=False):
        loc = tuple(str(p) for p in err["loc"] if not isinstance(p, int))
        field = _FIELD_OF.get(loc) or _FIELD_OF.get(loc[:1]) or "description"
        kind = str(err["type"])
        key = f"form.error.{field}"
        if kind == "string_too_long":
            key = "form.error.too_long"
        found.setdefault(field, _(key, limit=(err.get("ctx") or {}).get("max_length", "")))
    return {name: found[name] for name in FIELDS if name in found}


def form_values(form: Mapping[str, Any], groups: Sequence[str]) -> dict[str, Any]:
    """What the citizen entered, to show the form again with it."""
    values: dict[str, Any] = {name: _text(form, name) for name in FIELDS}
    values.update({"lat": _text(form, "lat"), "lon": _text(form, "lon")})
    values["special_groups"] = list(groups)
    return values


def district_options(place: Jurisdiction, lang: str) -> list[tuple[str, str]]:
    """The district picker: each district's code and its name in the page's language."""
    return [(d.code, d.names.get(lang) or d.name_en) for d in place.districts]


def district_name(place: Jurisdiction, code: str | None, lang: str) -> str | None:
    for d in place.districts:
        if d.code == code:
            return d.names.get(lang) or d.name_en
    return code


def local_time(at: datetime | None, place: Jurisdiction) -> str:
    return at.astimezone(place.zone()).strftime("%Y-%m-%d %H:%M") if at else ""
