"""Every intake channel on the real broker and database, through the four services: the JSON
API, Open311 (form POST answered in JSON and XML, read with the ``georeport`` client), the
partner topic and signed partner HTTP; idempotency, bad input and refused signatures."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from georeport import GeoReport  # type: ignore[import-untyped]

from services.intake import domain
from shared.topics import Topic
from tests.conftest import make_services
from tests.support.expected import SERVICE_CODES
from tests.support.journey import submit_open311
from tests.support.kafka import produce, read_topic, wait_until
from tests.support.services import ServiceSet

pytestmark = pytest.mark.e2e

API_KEY = "e2e-open311-key"
PARTNER = "hotline-12345"
SECRET = "e2e-partner-secret"
DONE = {"verified", "dispatched", "acknowledged", "in_progress", "resolved"}
_phones = itertools.count(1)


def phone() -> str:
    """A distinct mobile number per request, so no request looks like another's duplicate."""
    return f"139 1{next(_phones):03d} {int(time.time()) % 10000:04d}"


def body(description: str, **change: Any) -> dict[str, Any]:
    return {
        "category": "food_supply",
        "description": description,
        "contact": {"name": "张先生", "phone": phone()},
        "location": {"district": "jinshui", "address": "金水路 8 号", "lat": 34.77, "lon": 113.66},
        "language": "zh",
        **change,
    }


@pytest.fixture(scope="module")
async def services(kafka_bootstrap: str, mongodb_uri: str) -> AsyncIterator[ServiceSet]:
    """The four services, intake with an Open311 api key and one partner's secret."""
    started = await make_services(
        kafka_bootstrap,
        mongodb_uri,
        INTAKE_OPEN311_API_KEYS=API_KEY,
        INTAKE_PARTNER_SECRETS=json.dumps({PARTNER: SECRET}),
    )
    with started.running():
        yield started


async def reached(http: httpx.AsyncClient, request_id: str) -> dict[str, Any]:
    """The public view once the request was verified or dispatched (waits up to 30 s)."""

    async def done() -> dict[str, Any] | None:
        answer = await http.get(f"/v1/requests/{request_id}")
        if answer.status_code == 200 and answer.json()["status"] in DONE:
            return dict(answer.json())
        return None

    return dict(await wait_until(done, timeout=30))


def signed(
    raw: bytes, *, nonce: str, ts: float | None = None, secret: str = SECRET
) -> dict[str, str]:
    stamp = str(int(time.time() if ts is None else ts))
    return {
        "content-type": "application/json",
        "X-Partner-Id": PARTNER,
        "X-Timestamp": stamp,
        "X-Nonce": nonce,
        "X-Signature": domain.partner_signature(secret, stamp, nonce, raw),
    }


def partner_value(external_id: str, description: str, **change: Any) -> bytes:
    value = {**body(description), "partner_id": PARTNER, "external_id": external_id, **change}
    return json.dumps(value, ensure_ascii=False).encode()


async def test_every_channel_reaches_verification_and_shows_its_status(
    services: ServiceSet, kafka_bootstrap: str
) -> None:
    async with httpx.AsyncClient(base_url=services.url("intake")) as http:
        web = await http.post("/v1/requests", json=body("家里没有蔬菜了，需要买菜"))
        assert web.status_code == 202, web.text
        urgent = await http.post(
            "/v1/requests",
            json=body("孕妇临产，需要车去医院", category="transport", special_groups=["pregnant"]),
        )
        assert urgent.status_code == 202, urgent.text

        form = {
            "api_key": API_KEY,
            "service_code": "food_supply",
            "description": "小区封控，需要米面油",
            "lat": "34.77",
            "long": "113.66",
            "address_string": "金水路 9 号",
            "first_name": "女士",
            "last_name": "刘",
            "attribute[district]": "jinshui",
            "attribute[language]": "en",
        }
        as_json = await http.post("/open311/v2/requests.json", data={**form, "phone": phone()})
        assert as_json.status_code == 200, as_json.text
        open311_id = as_json.json()[0]["service_request_id"]
        open311_token = as_json.json()[0]["token"]
        as_xml = await http.post(
            "/open311/v2/requests.xml",
            data={**form, "phone": phone(), "description": "需要送菜上门，家里没有菜了"},
        )
        assert as_xml.status_code == 200, as_xml.text
        xml_id = ET.fromstring(as_xml.content).findtext("request/service_request_id")
        assert xml_id

        await produce(
            kafka_bootstrap,
            services.prefix + Topic.PARTNER_INBOUND.value,
            partner_value("T-1", "热线转来：需要买菜，家中无存粮"),
            key=b"T-1",
        )
        raw = partner_value("H-1", "热线转来：独自在家，需要食物")
        signed_answer = await http.post(
            "/v1/partner/requests", content=raw, headers=signed(raw, nonce="e2e-1")
        )
        assert signed_answer.status_code == 202, signed_answer.text

        ids = {
            "web": web.json()["request_id"],
            "urgent": urgent.json()["request_id"],
            "open311_json": open311_id,
            "open311_xml": xml_id,
            "partner_topic": domain.partner_request_id(PARTNER, "T-1"),
            "partner_http": signed_answer.json()["request_id"],
        }
        views = {name: await reached(http, rid) for name, rid in ids.items()}
        channels = {name: view["channel"] for name, view in views.items()}
        assert channels == {
            "web": "web",
            "urgent": "web",
            "open311_json": "open311",
            "open311_xml": "open311",
            "partner_topic": "partner_topic",
            "partner_http": "partner_http",
        }
        public = views["web"]
        assert public["view"] == "public"
        assert "description" not in public
        assert "****" in public["contact"]["phone"]
        assert public["timeline"][0]["status"] == "submitted"
        assert public["timeline"][0]["actor"] == "intake/web"

        full = await http.get(
            f"/v1/requests/{open311_id}", headers={"X-Tracking-Token": open311_token}
        )
        assert full.status_code == 200
        detail = full.json()
        assert detail["view"] == "full"
        assert detail["description"] == "小区封控，需要米面油"
        assert detail["language"] == "en"
        assert {"priority", "category", "departments", "duplicate_of"} <= set(detail)
        assert [t["status"] for t in detail["timeline"]][:2] == ["submitted", "verified"]
        assert all(t["at"] and t["actor"] for t in detail["timeline"])
        wrong = await http.get(f"/v1/requests/{open311_id}", params={"token": "0" * 32})
        assert wrong.status_code == 403

    # The urgent one went through the priority lane, the ordinary one did not.
    priority = await read_topic(
        kafka_bootstrap,
        services.prefix + Topic.SUBMITTED_PRIORITY.value,
        timeout=10,
        until=lambda rs: any(r.key == ids["urgent"].encode() for r in rs),
    )
    lane_keys = {r.key for r in priority}
    assert ids["urgent"].encode() in lane_keys
    assert ids["web"].encode() not in lane_keys


async def test_open311_reads_with_an_off_the_shelf_client(services: ServiceSet) -> None:
    """``georeport`` (PyPI) reads services, definitions and requests in JSON and in XML."""
    form = {
        "service_code": "health_code",
        "description": "健康码变红，需要申诉",
        "phone": phone(),
        "attribute[district]": "erqi",
    }
    request_id = (await submit_open311(services, API_KEY, form))["service_request_id"]
    async with httpx.AsyncClient(base_url=services.url("intake")) as http:
        await reached(http, request_id)

    root = f"{services.url('intake')}/open311/v2"
    for fmt in ("json", "xml"):
        client = GeoReport(root, output_format=fmt)
        services_list = await asyncio.to_thread(client.get_service_list)
        assert [s["service_code"] for s in services_list] == SERVICE_CODES
        assert services_list[5]["service_name"] == "健康码问题 / Health code problems"
        definition = await asyncio.to_thread(client.get_service_definition, "medical")
        attributes = definition["attributes"]
        if fmt == "xml":
            attributes = attributes["attribute"]
        assert [a["code"] for a in attributes] == ["special_groups", "language", "district"]
        one = await asyncio.to_thread(client.get_service_request, request_id)
        assert one["service_request_id"] == request_id
        assert one["status"] == "open"
        assert one["service_code"] == "health_code"
        many = await asyncio.to_thread(
            client.get_service_requests, service_code="health_code", status="open"
        )
        if fmt == "xml" and isinstance(many, dict):  # one <request> parses as a mapping
            many = [many]
        assert request_id in [r["service_request_id"] for r in many]
        closed = await asyncio.to_thread(
            client.get_service_requests, service_request_id=request_id, status="closed"
        )
        # service_request_id overrides the other filters, as the spec says
        if fmt == "xml" and isinstance(closed, dict):
            closed = [closed]
        assert [r["service_request_id"] for r in closed] == [request_id]


async def test_a_partner_request_is_one_request_however_often_and_however_it_comes(
    services: ServiceSet, kafka_bootstrap: str
) -> None:
    inbound = services.prefix + Topic.PARTNER_INBOUND.value
    raw = partner_value("I-1", "热线：老人家中断粮，需要送菜")
    expected = domain.partner_request_id(PARTNER, "I-1")
    await produce(kafka_bootstrap, inbound, raw, key=b"I-1")
    async with httpx.AsyncClient(base_url=services.url("intake")) as http:
        await reached(http, expected)
        await produce(kafka_bootstrap, inbound, raw, key=b"I-1")
        first = await http.post(
            "/v1/partner/requests", content=raw, headers=signed(raw, nonce="i-1")
        )
        second = await http.post(
            "/v1/partner/requests", content=raw, headers=signed(raw, nonce="i-2")
        )
    assert first.status_code == second.status_code == 202
    assert first.json()["request_id"] == second.json()["request_id"] == expected
    assert second.json()["replayed"] is True

    # A later marker record proves the redelivered one was processed before we count.
    marker = partner_value("I-2", "热线：需要买菜，家里没有菜")
    await produce(kafka_bootstrap, inbound, marker, key=b"I-1")  # same partition, after it
    marker_id = domain.partner_request_id(PARTNER, "I-2").encode()
    records = await read_topic(
        kafka_bootstrap,
        services.prefix + Topic.SUBMITTED.value,
        timeout=20,
        until=lambda rs: any(r.key == marker_id for r in rs),
    )
    assert any(r.key == marker_id for r in records)
    # An elderly citizen without food is urgent by triage: the request takes the fast lane.
    urgent = await read_topic(
        kafka_bootstrap,
        services.prefix + Topic.SUBMITTED_PRIORITY.value,
        timeout=20,
        until=lambda rs: any(r.key == expected.encode() for r in rs),
    )
    assert sum(r.key == expected.encode() for r in [*records, *urgent]) == 1


async def test_bad_input_is_refused_on_every_channel_and_the_stage_goes_on(
    services: ServiceSet, kafka_bootstrap: str
) -> None:
    async with httpx.AsyncClient(base_url=services.url("intake")) as http:
        # JSON API
        bad = await http.post(
            "/v1/requests",
            json=body("", category="pizza", location={"lat": 95, "lon": 113.6}),
        )
        assert bad.status_code == 422
        assert {"category", "description", "location.lat"} <= {
            p["field"] for p in bad.json()["problems"]
        }
        nan = await http.post(
            "/v1/requests",
            content=b'{"category": "medical", "description": "x",'
            b' "contact": {"phone": "13800138000"}, "location": {"lat": NaN, "lon": 1}}',
            headers={"content-type": "application/json"},
        )
        assert nan.status_code == 422
        typed = await http.post("/v1/requests", json={**body("需要买菜"), "special_groups": 3})
        assert typed.status_code == 422

        # Open311, both formats
        no_key = await http.post(
            "/open311/v2/requests.json", data={"service_code": "medical", "description": "d"}
        )
        assert no_key.status_code == 403
        assert no_key.json()[0]["code"] == 403
        bad_form = await http.post(
            "/open311/v2/requests.xml",
            data={"api_key": API_KEY, "service_code": "pizza", "lat": "north", "long": "1"},
        )
        assert bad_form.status_code == 400
        errors = ET.fromstring(bad_form.content)
        assert errors.tag == "errors"
        assert {e.findtext("code") for e in errors.findall("error")} == {"400"}
        assert len(errors.findall("error")) >= 3
        bad_filter = await http.get("/open311/v2/requests.json", params={"status": "pending"})
        assert bad_filter.status_code == 400
        assert bad_filter.json() == [{"code": 400, "description": "status must be open or closed"}]

        # signed partner HTTP
        raw = partner_value("S-1", "热线：需要买菜")
        missing = await http.post(
            "/v1/partner/requests", content=raw, headers={"content-type": "application/json"}
        )
        wrong = await http.post(
            "/v1/partner/requests", content=raw, headers=signed(raw, nonce="s-1", secret="guess")
        )
        stale = await http.post(
            "/v1/partner/requests",
            content=raw,
            headers=signed(raw, nonce="s-2", ts=time.time() - 600),
        )
        headers = signed(raw, nonce="s-3")
        good = await http.post("/v1/partner/requests", content=raw, headers=headers)
        replayed = await http.post("/v1/partner/requests", content=raw, headers=headers)
        assert [r.status_code for r in (missing, wrong, stale, good, replayed)] == [
            401,
            401,
            401,
            202,
            401,
        ]
        assert [r.json()["error"] for r in (missing, wrong, stale, replayed)] == [
            "missing_headers",
            "bad_signature",
            "stale_timestamp",
            "replayed",
        ]

        # partner topic: bad records are dead-lettered, a survey answer is skipped, and a valid
        # record after them still gets through
        inbound = services.prefix + Topic.PARTNER_INBOUND.value
        for value in (
            b"{not json",
            b"\xff\xfe\x00",
            partner_value("D-1", "d", category="pizza"),
            partner_value("D-2", "热线：需要买菜", partner_id="stranger"),
        ):
            await produce(kafka_bootstrap, inbound, value, key=b"D")
        await produce(
            kafka_bootstrap,
            inbound,
            json.dumps({"request_id": "r-1", "satisfied": True}).encode(),
            key=b"D",
            headers=[("ce_type", b"city.help.survey.answer.v1")],
        )
        # one key, so one partition: once D-3 is through, every record before it was handled
        await produce(
            kafka_bootstrap, inbound, partner_value("D-3", "热线：断粮两天，需要买菜"), key=b"D"
        )
        await reached(http, domain.partner_request_id(PARTNER, "D-3"))

    dead = await read_topic(
        kafka_bootstrap,
        services.prefix + Topic.DLQ_INTAKE.value,
        timeout=10,
        until=lambda rs: len(rs) >= 4,
    )
    reasons = sorted(dict(r.headers)["dlq_reason"].decode() for r in dead)
    assert reasons == ["invalid_json", "invalid_utf8", "schema_violation", "unknown_partner"]
    assert {dict(r.headers)["dlq_origin_topic"].decode() for r in dead} == {inbound}
