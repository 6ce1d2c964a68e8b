"""Bad input at a small volume through the four running services (``make chaos`` runs the same
floods at full size): generated HTTP junk gets 4xx, never 5xx; malformed records on every input
topic are dead-lettered with their origin or skipped by a named rule; the dead-letter limit
halts a stage instead of draining its topic; and no personal data reaches the logs."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from services.intake import domain as intake_domain
from shared.topics import Topic
from tests.chaos import bad_input
from tests.chaos.credentials import API_KEY, PARTNER, service_env, sign
from tests.chaos.http_flood import KINDS, http_flood
from tests.chaos.http_strategies import encode
from tests.chaos.kafka_flood import kafka_flood
from tests.chaos.kafka_records import CONSUMERS, IGNORED_RULES
from tests.chaos.personal_data import Person, log_files, people, personal_data_in_logs, request_body
from tests.conftest import make_services
from tests.support.kafka import produce, read_topic, wait_until
from tests.support.services import ServiceSet

pytestmark = pytest.mark.e2e

SEED = random.randrange(1 << 30)
CITIZENS = people(12, seed=SEED)
HTTP_INPUTS = 1000
RECORDS_PER_TOPIC = 50


@pytest.fixture(scope="module")
async def services(kafka_bootstrap: str, mongodb_uri: str) -> AsyncIterator[ServiceSet]:
    """The four services with every key configured; the consecutive dead-letter limit is
    lifted, as the flood is nothing but dead letters (the limit has its own test)."""
    started = await make_services(kafka_bootstrap, mongodb_uri, **service_env(dlq_limit=100_000))
    with started.running():
        yield started


async def test_generated_http_input_is_answered_4xx_never_5xx(services: ServiceSet) -> None:
    flood = await http_flood(services, HTTP_INPUTS, seed=SEED, citizen=CITIZENS[0])
    tally = flood.tally
    report = bad_input.summary(flood)
    assert tally.tried >= HTTP_INPUTS, report
    assert set(tally.by_class) <= {"2xx", "3xx", "4xx"}, report
    assert tally.by_class["4xx"] > tally.by_class["2xx"], report
    assert KINDS | {"raw_protocol"} <= set(tally.by_kind), report
    assert flood.alive == dict.fromkeys(flood.alive, True), report
    rows = bad_input.http_rows(flood)
    assert sum(r.tried for r in rows[:-1]) == tally.tried, "every kind is in a row of the table"
    assert all(r.bad == 0 and r.tried > 0 for r in rows), rows


async def test_malformed_records_on_every_input_topic_are_dead_lettered_or_skipped_by_rule(
    services: ServiceSet, kafka_bootstrap: str
) -> None:
    flood = await kafka_flood(
        services, kafka_bootstrap, RECORDS_PER_TOPIC, seed=SEED, citizen=CITIZENS[1]
    )
    report = bad_input.summary(flood)
    assert all(flood.consumed.values()), report
    expected_pairs = {(service, topic) for topic, cs in CONSUMERS.items() for service, _ in cs}
    assert set(flood.tallies) == expected_pairs, report
    for tally in flood.tallies.values():
        assert tally.tried == RECORDS_PER_TOPIC, report
        assert tally.dead_lettered + sum(tally.ignored.values()) == tally.tried, report
    assert flood.bad == 0, report
    assert flood.stray_dead_letters == 0, report
    kinds = {kind for t in flood.tallies.values() for kind in t.kinds}
    assert {
        "not_json",
        "invalid_utf8",
        "wrong_schema",
        "empty",
        "tombstone",
        "garbage_headers",
        "unknown_id",
        "oversized",
        "survey_junk",
    } <= kinds, report
    rules = {rule for t in flood.tallies.values() for rule in t.ignored}
    assert rules == set(IGNORED_RULES), report
    reasons = {reason for t in flood.tallies.values() for reason in t.reasons}
    assert {"invalid_json", "invalid_utf8", "schema_violation", "oversized"} <= reasons, report
    assert {"unknown_partner", "no_survey", "no_contact", "unknown_leg"} <= reasons, report
    assert flood.alive == dict.fromkeys(flood.alive, True), report
    assert flood.after_flood == dict.fromkeys(flood.after_flood, True), report
    rows = bad_input.kafka_rows(flood)
    assert len(rows) == len(CONSUMERS) + 1, rows
    assert all(r.bad == 0 and r.ok == r.tried for r in rows), rows


async def test_dead_letter_limit_halts_the_stage_instead_of_draining_the_topic(
    kafka_bootstrap: str, mongodb_uri: str
) -> None:
    limit, sent = 5, 12
    halting = await make_services(
        kafka_bootstrap, mongodb_uri, INTAKE_DLQ_CONSECUTIVE_LIMIT=str(limit)
    )
    halting.start("intake")
    try:
        topic = halting.prefix + Topic.PARTNER_INBOUND.value
        for i in range(sent):
            await produce(kafka_bootstrap, topic, b"not json %d" % i, key=b"k")

        async def halted() -> dict[str, Any] | None:
            async with httpx.AsyncClient() as http:
                ready = await http.get(f"{halting.url('intake')}/readyz")
            body: dict[str, Any] = ready.json()
            return body if ready.status_code == 503 else None

        body = await wait_until(halted, timeout=60)
        assert body["checks"]["stage"].startswith("halted"), body
        dead = await read_topic(
            kafka_bootstrap,
            halting.prefix + Topic.DLQ_INTAKE.value,
            until=lambda rs: len(rs) >= limit,
            timeout=30,
        )
        assert len(dead) == limit
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        await admin.start()
        try:
            offsets = await admin.list_consumer_group_offsets(f"{halting.prefix}cityhelp-intake")
        finally:
            await admin.close()
        committed = sum(o.offset for tp, o in offsets.items() if tp.topic == topic)
        assert committed <= limit < sent, "the halted stage must not commit past the limit"
        assert halting.procs["intake"].poll() is None, "halted, not crashed"
    finally:
        halting.stop()


async def test_no_personal_data_in_the_logs(services: ServiceSet, kafka_bootstrap: str) -> None:
    """Personal data through every channel, valid and not, then every log line is searched."""
    mine = CITIZENS[4:]
    intake = services.url("intake")
    async with httpx.AsyncClient(timeout=30) as http:
        accepted: list[str] = []
        web = await http.post(f"{intake}/v1/requests", json=request_body(mine[0]))
        assert web.status_code == 202, web.text
        accepted.append(web.json()["request_id"])
        form = {
            "api_key": API_KEY,
            "service_code": "food_supply",
            "description": mine[1].description,
            "phone": mine[1].phone,
            "first_name": mine[1].name[1:],
            "last_name": mine[1].name[:1],
            "address_string": mine[1].address,
            "lat": "34.77",
            "long": "113.66",
            "attribute[district]": "jinshui",
        }
        open311 = await http.post(f"{intake}/open311/v2/requests.json", data=form)
        assert open311.status_code == 200, open311.text
        accepted.append(open311.json()[0]["service_request_id"])
        partner = encode(
            {**request_body(mine[2]), "partner_id": PARTNER, "external_id": uuid.uuid4().hex},
            "utf8",
        )
        signed = await http.post(
            f"{intake}/v1/partner/requests", content=partner, headers=sign(partner)
        )
        assert signed.status_code == 202, signed.text
        accepted.append(signed.json()["request_id"])
        external_id = uuid.uuid4().hex
        await produce(
            kafka_bootstrap,
            services.prefix + Topic.PARTNER_INBOUND.value,
            encode(
                {**request_body(mine[3]), "partner_id": PARTNER, "external_id": external_id},
                "utf8",
            ),
            key=external_id.encode(),
        )
        accepted.append(
            intake_domain.request_id_for(client=f"partner:{PARTNER}", idempotency_key=external_id)
        )
        # Refused input that carries personal data: invalid fields, a bad signature, a
        # duplicate-looking repeat and rate-limited repeats of one phone.
        for person in mine[4:]:
            bad = request_body(person, category="pizza", language="xx")
            refused = await http.post(f"{intake}/v1/requests", json=bad)
            assert refused.status_code == 422
            raw = encode({**request_body(person), "partner_id": PARTNER}, "utf8")
            unsigned = await http.post(f"{intake}/v1/partner/requests", content=raw)
            assert unsigned.status_code == 401
            for _ in range(7):
                await http.post(f"{intake}/v1/requests", json=request_body(person))

        async def notified() -> bool:
            records = await read_topic(
                kafka_bootstrap,
                services.prefix + Topic.NOTIFICATIONS.value,
                until=lambda rs: False,
                timeout=2,
            )
            dispatched = {
                r.key.decode()
                for r in records
                if r.key is not None and json.loads(r.value)["event"] == "dispatched"
            }
            return set(accepted) <= dispatched

        await wait_until(notified, timeout=90, every=1)
    leaks = personal_data_in_logs(log_files(services), CITIZENS)
    assert leaks == [], leaks
    lines = sum(len(p.read_text("utf-8").splitlines()) for p in log_files(services))
    assert lines > 100, "the services logged: the search had something to search"


def test_the_log_search_finds_personal_data_in_every_shape(tmp_path: Any) -> None:
    """The search itself: a phone number spaced, dashed or escaped is still found."""
    person: Person = CITIZENS[0]
    log = tmp_path / "x.log"
    spaced = " ".join(person.digits[i : i + 4] for i in range(0, 11, 4))
    log.write_text(
        "\n".join(
            [
                json.dumps({"msg": "ok", "request_id": "r1"}),
                json.dumps({"msg": f"phone {spaced}"}),
                json.dumps({"msg": person.name}, ensure_ascii=True),
                f"text line with {person.address}",
            ]
        ),
        encoding="utf-8",
    )
    found = personal_data_in_logs([log], [person])
    assert [f.split(":")[1] for f in found] == ["2", "3", "4"], found
