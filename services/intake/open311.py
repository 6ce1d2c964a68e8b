"""Open311 GeoReport v2, pure: the form → HelpRequest mapping, our records → Open311 views,
query filters and the spec's errors. No I/O; rendering is in :mod:`open311_formats`.

Spec: http://wiki.open311.org/GeoReport_v2 . XML roots: ``services/service``,
``service_definition``, ``service_requests/request``, ``errors/error``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, get_args

from pydantic import ValidationError

from services.intake.domain import Open311Config
from shared.schemas import CATEGORIES, HelpRequest, RequestStatus

# Our lifecycle states that are over for the citizen; everything else is "open".
CLOSED_STATUSES = frozenset({"rejected", "duplicate", "resolved", "closed"})

# Form fields of POST requests the spec defines (others are refused as unknown).
_SPEC_FIELDS = frozenset(
    {
        "api_key",
        "jurisdiction_id",
        "service_code",
        "lat",
        "long",
        "address_string",
        "address_id",
        "email",
        "device_id",
        "account_id",
        "first_name",
        "last_name",
        "phone",
        "description",
        "media_url",
    }
)
_ATTRIBUTES = ("special_groups", "language", "district")


@dataclass(frozen=True, slots=True)
class Open311Error:
    code: int
    description: str


class Open311InputError(Exception):
    """Input the spec's error format answers (400, 403, 404, 429)."""

    def __init__(self, errors: Sequence[Open311Error], *, retry_after: str | None = None) -> None:
        super().__init__("; ".join(e.description for e in errors))
        self.errors = list(errors)
        self.status = errors[0].code if errors else 400
        self.retry_after = retry_after


def bad(status: int, description: str) -> Open311InputError:
    return Open311InputError([Open311Error(status, description)])


# --- services ----------------------------------------------------------------------------------


def service_list(config: Open311Config) -> list[dict[str, Any]]:
    """GET services: our categories, named in Chinese and English."""
    out = []
    for code in CATEGORIES:
        s = config.services.get(code)
        if s is None:
            continue
        out.append(
            {
                "service_code": code,
                "service_name": f"{s.name_zh} / {s.name_en}",
                "description": s.description,
                "metadata": True,
                "type": "realtime",
                "keywords": ",".join(s.keywords),
                "group": s.group,
            }
        )
    return out


def service_definition(config: Open311Config, service_code: str) -> dict[str, Any]:
    """GET services/{code}: the attributes a client may send (special groups, language,
    district)."""
    if service_code not in config.services:
        raise bad(404, f"service_code {service_code!r} not found")

    def values(options: Mapping[str, str]) -> list[dict[str, str]]:
        return [{"key": k, "name": v} for k, v in options.items()]

    return {
        "service_code": service_code,
        "attributes": [
            {
                "variable": True,
                "code": "special_groups",
                "datatype": "multivaluelist",
                "required": False,
                "datatype_description": "特殊人群（绿色通道）/ Special groups (green channel)",
                "order": 1,
                "description": "需要优先照顾的人群 / People who need priority care",
                "values": values(config.special_groups),
            },
            {
                "variable": True,
                "code": "language",
                "datatype": "singlevaluelist",
                "required": False,
                "datatype_description": "通知语言 / Language of notifications",
                "order": 2,
                "description": "zh (default), en, ru",
                "values": values(config.languages),
            },
            {
                "variable": True,
                "code": "district",
                "datatype": "singlevaluelist",
                "required": False,
                "datatype_description": "所在区县 / District",
                "order": 3,
                "description": "区县代码或中文名 / District code or Chinese name",
                "values": values(config.districts),
            },
        ],
    }


# --- POST requests -----------------------------------------------------------------------------


def _attribute_name(field: str) -> str | None:
    """``attribute[special_groups]`` or ``attribute[special_groups][]`` → ``special_groups``."""
    if not field.startswith("attribute[") or "]" not in field:
        return None
    name = field[len("attribute[") : field.index("]")]
    rest = field[field.index("]") + 1 :]
    return name if rest in ("", "[]") else None


def _coordinate(
    value: str, name: str, low: float, high: float, errors: list[Open311Error]
) -> float | None:
    try:
        number = float(value)
    except ValueError:
        errors.append(Open311Error(400, f"{name} must be a number"))
        return None
    if not math.isfinite(number) or not low <= number <= high:
        errors.append(Open311Error(400, f"{name} must be between {low:g} and {high:g}"))
        return None
    return number


def help_request_from_form(form: Sequence[tuple[str, str]], config: Open311Config) -> HelpRequest:
    """POST requests (form fields as sent, repeated ones included) → our :class:`HelpRequest`.

    Raises :class:`Open311InputError` (400) listing every problem found.
    """
    fields: dict[str, str] = {}
    attributes: dict[str, list[str]] = {}
    errors: list[Open311Error] = []
    for name, value in form:
        attribute = _attribute_name(name)
        if attribute is not None:
            if attribute not in _ATTRIBUTES:
                errors.append(Open311Error(400, f"unknown attribute {attribute!r}"))
                continue
            attributes.setdefault(attribute, []).extend(
                part.strip() for part in value.split(",") if part.strip()
            )
        elif name in _SPEC_FIELDS:
            if name in fields and fields[name] != value:
                errors.append(Open311Error(400, f"{name} given more than once"))
            fields[name] = value.strip()
        else:
            errors.append(Open311Error(400, f"unknown field {name!r}"))

    code = fields.get("service_code", "")
    if not code:
        errors.append(Open311Error(400, "service_code is required"))
    elif code not in config.services:
        errors.append(Open311Error(400, f"service_code {code!r} is not one of ours"))
    if not fields.get("description"):
        errors.append(Open311Error(400, "description is required"))
    if not fields.get("phone"):
        errors.append(Open311Error(400, "phone is required (verification calls back)"))
    lat = lon = None
    has_lat, has_lon = bool(fields.get("lat")), bool(fields.get("long"))
    if has_lat != has_lon:
        errors.append(Open311Error(400, "lat and long must be given together"))
    if has_lat and has_lon:
        lat = _coordinate(fields["lat"], "lat", -90, 90, errors)
        lon = _coordinate(fields["long"], "long", -180, 180, errors)
    district_values = attributes.get("district", [])
    if not (has_lat or fields.get("address_string") or fields.get("address_id") or district_values):
        errors.append(
            Open311Error(400, "a location is required: lat and long, address_string or district")
        )
    if len(district_values) > 1:
        errors.append(Open311Error(400, "attribute[district] takes one value"))
    languages = attributes.get("language", [])
    if len(languages) > 1:
        errors.append(Open311Error(400, "attribute[language] takes one value"))
    if errors:
        raise Open311InputError(errors)

    names = (fields.get("last_name"), fields.get("first_name"))  # Chinese order: family first
    contact_name = " ".join(p for p in names if p) or None
    address = fields.get("address_string") or fields.get("address_id") or None
    body: dict[str, Any] = {
        "category": code,
        "description": fields["description"],
        "contact": {"name": contact_name, "phone": fields["phone"]},
        "location": {
            "district": district_values[0] if district_values else None,
            "address": address,
            "lat": lat,
            "lon": lon,
        },
        "special_groups": list(dict.fromkeys(attributes.get("special_groups", []))),
    }
    if languages:
        body["language"] = languages[0]
    try:
        return HelpRequest.model_validate(body)
    except ValidationError as exc:
        raise Open311InputError(
            [
                Open311Error(400, f"{_form_name(err['loc'])}: {err['msg']}")
                for err in exc.errors(include_url=False)
            ]
        ) from exc


_FORM_NAMES = {
    "contact.phone": "phone",
    "contact.name": "first_name/last_name",
    "location.lat": "lat",
    "location.lon": "long",
    "location.address": "address_string",
    "location.district": "attribute[district]",
    "special_groups": "attribute[special_groups]",
    "language": "attribute[language]",
    "category": "service_code",
}


def _form_name(loc: Sequence[int | str]) -> str:
    path = ".".join(str(p) for p in loc)
    for ours, theirs in _FORM_NAMES.items():
        if path == ours or path.startswith(ours + "."):
            return theirs
    return path


# --- GET requests ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RequestQuery:
    """Filters of GET requests, validated. ``ids`` overrides all others (as the spec says)."""

    start: datetime
    end: datetime
    ids: tuple[str, ...] = ()
    service_codes: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()  # our statuses matching the open/closed filter


def _w3c(value: str, name: str, errors: list[Open311Error]) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        errors.append(
            Open311Error(400, f"{name} must be a W3C datetime, e.g. 2022-01-09T14:00:00Z")
        )
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def our_statuses(open311_status: str) -> tuple[str, ...]:
    """Our statuses that Open311 calls ``open`` or ``closed``."""
    ours: tuple[str, ...] = get_args(RequestStatus)
    if open311_status == "closed":
        return tuple(s for s in ours if s in CLOSED_STATUSES)
    return tuple(s for s in ours if s not in CLOSED_STATUSES)


def parse_query(params: Mapping[str, str], config: Open311Config, *, now: datetime) -> RequestQuery:
    """GET requests' query → :class:`RequestQuery`; 400 for malformed filters."""
    errors: list[Open311Error] = []

    def split(name: str) -> tuple[str, ...]:
        return tuple(p.strip() for p in params.get(name, "").split(",") if p.strip())

    ids = split("service_request_id")
    if len(ids) > config.max_results:
        errors.append(Open311Error(400, f"at most {config.max_results} service_request_id"))
    codes = split("service_code")
    unknown = [c for c in codes if c not in config.services]
    if unknown:
        errors.append(Open311Error(400, f"unknown service_code {', '.join(unknown)}"))
    statuses: list[str] = []
    for s in split("status"):
        if s not in ("open", "closed"):
            errors.append(Open311Error(400, "status must be open or closed"))
        else:
            statuses.extend(our_statuses(s))
    start = _w3c(params["start_date"], "start_date", errors) if params.get("start_date") else None
    end = _w3c(params["end_date"], "end_date", errors) if params.get("end_date") else None
    if errors:
        raise Open311InputError(errors)
    window = timedelta(days=config.default_days)
    if start is None and end is None:
        end, start = now, now - window
    elif start is None:
        assert end is not None
        start = end - window
    elif end is None:
        end = min(now, start + window)
    if end < start:
        raise bad(400, "end_date is before start_date")
    if end - start > timedelta(days=config.max_days):
        raise bad(400, f"start_date to end_date may not span more than {config.max_days} days")
    return RequestQuery(
        ids=ids, service_codes=codes, start=start, end=end, statuses=tuple(dict.fromkeys(statuses))
    )


def open311_status(status: str | None) -> str:
    return "closed" if status in CLOSED_STATUSES else "open"


def status_notes(doc: Mapping[str, Any]) -> str:
    """What happened last, without personal data: our status, departments, the stage's reason."""
    status = str(doc.get("status") or "submitted")
    parts = [status]
    departments = doc.get("departments") or []
    if departments:
        parts.append("departments: " + ", ".join(str(d) for d in departments))
    if doc.get("duplicate_of"):
        parts.append(f"duplicate of {doc['duplicate_of']}")
    timeline = doc.get("timeline") or []
    if timeline and timeline[-1].get("reason"):
        parts.append(str(timeline[-1]["reason"])[:200])
    return "; ".join(parts)


def _w3c_text(value: Any) -> str | None:
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return None


def request_view(doc: Mapping[str, Any], config: Open311Config) -> dict[str, Any]:
    """One of our records as an Open311 service request. Public, so personal data is left out:
    no description, name, phone, street address or exact coordinates (the district stands in
    for the address); the citizen's full view is GET /v1/requests/{id} with the token."""
    code = str(doc.get("category") or "")
    service = config.services.get(code)
    # Verification's district code: the citizen's own words are never shown as the place.
    district = doc.get("district")
    return {
        "service_request_id": doc.get("request_id") or doc.get("_id"),
        "status": open311_status(doc.get("status")),
        "status_notes": status_notes(doc),
        "service_name": f"{service.name_zh} / {service.name_en}" if service else code,
        "service_code": code,
        "description": None,
        "agency_responsible": ", ".join(str(d) for d in doc.get("departments") or []) or None,
        "service_notice": f"priority {doc['priority']}" if doc.get("priority") else None,
        "requested_datetime": _w3c_text(doc.get("submitted_at")),
        "updated_datetime": _w3c_text(doc.get("updated_at") or doc.get("submitted_at")),
        "expected_datetime": None,
        "address": config.districts.get(str(district), district) if district else None,
        "address_id": None,
        "zipcode": None,
        "lat": None,
        "long": None,
        "media_url": None,
    }
