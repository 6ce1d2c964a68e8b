"""Open311 GeoReport v2, pure parts: form → HelpRequest, filters, views, JSON and XML."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest

from services.intake import domain, open311, open311_formats
from services.intake.open311 import Open311InputError
from shared.settings import CONFIG_DIR
from tests.support.expected import SERVICE_CODES
from tests.support.records import stored_request

pytestmark = pytest.mark.unit

CONFIG = domain.load_rules(CONFIG_DIR / "intake.toml").open311
NOW = datetime(2022, 1, 9, 14, 0, tzinfo=UTC)

FORM: list[tuple[str, str]] = [
    ("api_key", "k"),
    ("service_code", "medical"),
    ("description", "需要胰岛素，家里老人独居"),
    ("lat", "34.77"),
    ("long", "113.66"),
    ("address_string", "金水路 1 号"),
    ("first_name", "女士"),
    ("last_name", "王"),
    ("phone", "138 0013 8000"),
    ("email", "wang@example.org"),
    ("attribute[special_groups][]", "elderly"),
    ("attribute[special_groups][]", "chronic_illness"),
    ("attribute[language]", "zh"),
    ("attribute[district]", "金水区"),
]


def errors_of(form: list[tuple[str, str]]) -> list[str]:
    with pytest.raises(Open311InputError) as caught:
        open311.help_request_from_form(form, CONFIG)
    assert {e.code for e in caught.value.errors} == {400}
    return [e.description for e in caught.value.errors]


def test_form_maps_to_help_request() -> None:
    request = open311.help_request_from_form(FORM, CONFIG)
    assert request.category == "medical"
    assert request.description == "需要胰岛素，家里老人独居"
    assert request.contact.phone == "138 0013 8000"
    assert request.contact.name == "王 女士"
    assert request.location is not None
    assert (request.location.lat, request.location.lon) == (34.77, 113.66)
    assert request.location.address == "金水路 1 号"
    assert request.location.district == "金水区"
    assert request.special_groups == ["elderly", "chronic_illness"]
    assert request.language == "zh"


def test_special_groups_may_be_comma_separated_or_repeated_without_brackets() -> None:
    form = [f for f in FORM if not f[0].startswith("attribute[special_groups]")]
    comma = open311.help_request_from_form(
        [*form, ("attribute[special_groups]", "pregnant,child")], CONFIG
    )
    assert comma.special_groups == ["pregnant", "child"]


def test_minimal_form_with_only_an_address() -> None:
    form = [
        ("service_code", "food_supply"),
        ("description", "need groceries"),
        ("phone", "13800138000"),
        ("address_string", "somewhere"),
    ]
    request = open311.help_request_from_form(form, CONFIG)
    assert request.location is not None
    assert request.location.lat is None
    assert request.language == "zh"


def test_every_problem_is_listed() -> None:
    problems = errors_of([("lat", "91"), ("long", "nan"), ("attribute[colour]", "red")])
    text = " | ".join(problems)
    for expected in ("service_code", "description", "phone", "lat", "long", "colour"):
        assert expected in text, text


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("service_code", "pizza"), "service_code"),
        (("lat", "north"), "lat must be a number"),
        (("lat", "95"), "lat must be between"),
        (("long", "inf"), "long must be between"),
        (("attribute[language]", "fr"), "attribute[language]"),
        (("attribute[special_groups][]", "vip"), "attribute[special_groups]"),
        (("description", "x" * 2001), "description"),
        (("phone", "1"), "phone"),
    ],
)
def test_bad_field_is_named(change: tuple[str, str], expected: str) -> None:
    name, value = change
    form = [(k, v) for k, v in FORM if k != name]
    if name == "lat":
        form = [(k, v) for k, v in form if k != "long"] + [("long", "113.66")]
    if name == "long":
        form = [(k, v) for k, v in form if k != "lat"] + [("lat", "34.77")]
    form.append((name, value))
    assert any(expected in p for p in errors_of(form)), errors_of(form)


def test_lat_without_long_and_no_location_are_refused() -> None:
    base = [("service_code", "medical"), ("description", "d"), ("phone", "13800138000")]
    assert any("together" in p for p in errors_of([*base, ("lat", "34.7")]))
    assert any("location is required" in p for p in errors_of(base))


# --- services and definitions ----------------------------------------------------------------


def test_service_list_has_our_seven_categories_in_chinese_and_english() -> None:
    services = open311.service_list(CONFIG)
    assert [s["service_code"] for s in services] == SERVICE_CODES
    medical = services[2]
    assert medical["service_name"] == "寻医买药 / Medical care and medicine"
    assert medical["metadata"] is True
    assert medical["type"] == "realtime"


def test_service_definition_offers_special_groups_language_and_district() -> None:
    definition = open311.service_definition(CONFIG, "medical")
    by_code = {a["code"]: a for a in definition["attributes"]}
    assert by_code["special_groups"]["datatype"] == "multivaluelist"
    assert {v["key"] for v in by_code["special_groups"]["values"]} == {
        "pregnant",
        "elderly",
        "child",
        "disabled",
        "chronic_illness",
        "living_alone",
    }
    assert {v["key"] for v in by_code["language"]["values"]} == {"zh", "en", "ru"}
    assert len(by_code["district"]["values"]) == 16
    with pytest.raises(Open311InputError) as caught:
        open311.service_definition(CONFIG, "pizza")
    assert caught.value.status == 404


# --- XML and JSON rendering --------------------------------------------------------------------


def test_services_xml_has_the_spec_root_and_items() -> None:
    body = open311_formats.render_xml("services", "service", open311.service_list(CONFIG))
    assert body.startswith(b'<?xml version="1.0" encoding="utf-8"?>')
    root = ET.fromstring(body)
    assert root.tag == "services"
    assert [c.tag for c in root] == ["service"] * 7
    first = root[0]
    assert first.findtext("service_code") == "epidemic_policy"
    assert first.findtext("metadata") == "true"
    assert first.findtext("service_name") == "疫情政策 / Epidemic policy"


def test_service_definition_xml_nests_attributes_and_values() -> None:
    definition = open311.service_definition(CONFIG, "medical")
    root = ET.fromstring(open311_formats.render_xml("service_definition", None, definition))
    assert root.tag == "service_definition"
    assert root.findtext("service_code") == "medical"
    attributes = root.findall("attributes/attribute")
    assert [a.findtext("code") for a in attributes] == ["special_groups", "language", "district"]
    keys = [v.findtext("key") for v in attributes[0].findall("values/value")]
    assert "pregnant" in keys
    assert attributes[0].findtext("variable") == "true"


def test_xml_escapes_markup_in_values() -> None:
    body = open311_formats.render_xml("service_requests", "request", [{"status_notes": "<b>&</b>"}])
    assert ET.fromstring(body).findtext("request/status_notes") == "<b>&</b>"


def test_errors_in_the_spec_format_json_and_xml() -> None:
    errors = [open311.Open311Error(400, "service_code is required"), open311.Open311Error(400, "x")]
    assert json.loads(open311_formats.render_errors(errors, "json")) == [
        {"code": 400, "description": "service_code is required"},
        {"code": 400, "description": "x"},
    ]
    root = ET.fromstring(open311_formats.render_errors(errors, "xml"))
    assert root.tag == "errors"
    assert [(e.findtext("code"), e.findtext("description")) for e in root] == [
        ("400", "service_code is required"),
        ("400", "x"),
    ]


# --- request views and filters -----------------------------------------------------------------

DOC = stored_request()


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        ("submitted", "open"),
        ("verified", "open"),
        ("needs_review", "open"),
        ("dispatched", "open"),
        ("in_progress", "open"),
        ("escalated", "open"),
        ("reopened", "open"),
        ("rejected", "closed"),
        ("duplicate", "closed"),
        ("resolved", "closed"),
        ("closed", "closed"),
    ],
)
def test_our_statuses_map_to_open_or_closed(ours: str, theirs: str) -> None:
    assert open311.open311_status(ours) == theirs
    assert ours in open311.our_statuses(theirs)


def test_request_view_is_public_and_has_status_notes() -> None:
    view = open311.request_view(DOC, CONFIG)
    assert view["service_request_id"] == "r1"
    assert view["status"] == "open"
    assert view["status_notes"] == "dispatched; departments: medical; default:medical"
    assert view["agency_responsible"] == "medical"
    assert view["requested_datetime"] == "2022-01-09T06:00:00Z"
    # Verification's code, shown by its name in the jurisdiction file (not the citizen's "金水").
    assert view["address"] == "金水区 / Jinshui District"
    text = repr(view)
    for secret in ("需要胰岛素", "王女士", "13800138000", "金水路", "34.77"):
        assert secret not in text


def test_query_defaults_to_the_last_days_and_maps_status() -> None:
    query = open311.parse_query({"status": "closed", "service_code": "medical"}, CONFIG, now=NOW)
    assert query.end == NOW
    assert query.start == NOW - timedelta(days=CONFIG.default_days)
    assert set(query.statuses) == {"rejected", "duplicate", "resolved", "closed"}
    assert query.service_codes == ("medical",)


def test_query_takes_a_list_of_ids_and_w3c_dates() -> None:
    query = open311.parse_query(
        {"service_request_id": "a, b,c", "start_date": "2022-01-01T00:00:00Z"}, CONFIG, now=NOW
    )
    assert query.ids == ("a", "b", "c")
    assert query.start == datetime(2022, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": "pending"}, "status must be open or closed"),
        ({"service_code": "pizza"}, "unknown service_code"),
        ({"start_date": "yesterday"}, "start_date must be a W3C datetime"),
        (
            {"start_date": "2022-01-09T00:00:00Z", "end_date": "2022-01-01T00:00:00Z"},
            "before start_date",
        ),
        (
            {"start_date": "2021-01-01T00:00:00Z", "end_date": "2022-01-01T00:00:00Z"},
            "more than 90 days",
        ),
    ],
)
def test_bad_filters_are_refused(params: dict[str, str], expected: str) -> None:
    with pytest.raises(Open311InputError) as caught:
        open311.parse_query(params, CONFIG, now=NOW)
    assert caught.value.status == 400
    assert any(expected in e.description for e in caught.value.errors)
