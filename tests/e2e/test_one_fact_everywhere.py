"""One phone number and one triage, end to end: the four services, the real broker and
database, the fake SMS gateway standing in for the operator.

Each number is followed from the form to every message the gateway receives about its request:
a Russian or a US mobile keeps its country, a Zhengzhou landline gets its area code, full-width
digits are digits. Each urgent need written with its words apart takes the fast lane at intake
and comes out of verify as P1."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared.topics import Topic
from tests.support import journey
from tests.support.kafka import read_topic, wait_until
from tests.support.services import ServiceSet
from tools.fake_gateway import FakeGateway

pytestmark = pytest.mark.e2e

JINSHUI = {"district": "金水区", "address": "金水路 1 号", "lat": 34.8, "lon": 113.66}


async def submit(services: ServiceSet, body: dict[str, Any]) -> str:
    request_id: str = (await journey.submit(services, body))["request_id"]
    return request_id


def help_request(phone: str, description: str, category: str = "medical") -> dict[str, Any]:
    return {
        "category": category,
        "description": description,
        "contact": {"name": "Анна", "phone": phone},
        "location": JINSHUI,
        "language": "en",
    }


# (as typed, where every message must go, what the verification step tells the citizen)
NUMBERS = [
    ("+7 916 123-45-67", "+79161234567", "needs_review"),  # Russian mobile: kept, reviewed
    ("+1 (650) 253-0000", "+16502530000", "needs_review"),  # US mobile
    ("6789 1234", "+8637167891234", "verified"),  # Zhengzhou landline without area code
    ("0371-6789 1235", "+8637167891235", "verified"),  # with it
    ("１３９ ０００１ ２３４５", "+8613900012345", "verified"),  # full-width digits
]


async def test_every_message_goes_to_the_number_as_typed_in_its_country(
    services: ServiceSet, gateway: FakeGateway
) -> None:
    sent: dict[str, tuple[str, str]] = {}
    for n, (typed, e164, step) in enumerate(NUMBERS):
        rid = await submit(services, help_request(typed, f"need insulin for my father, {n}"))
        sent[rid] = (e164, step)

    def messages(rid: str) -> list[dict[str, Any]]:
        return [m for m in gateway.snapshot()["messages"] if rid in m["text"]]

    def told(rid: str, words: str) -> bool:
        return any(words in m["text"] for m in messages(rid))

    receipt, verified, review = "was received", "was verified", "is being checked"

    def all_told() -> bool:
        return all(
            told(rid, receipt) and told(rid, verified if step == "verified" else review)
            for rid, (_, step) in sent.items()
        )

    await wait_until(all_told, timeout=90)
    for rid, (e164, _) in sent.items():
        assert {m["to"] for m in messages(rid)} == {e164}, rid
    # Nothing went to a number made by putting +86 before a foreign or a local number.
    wrong = {"+8679161234567", "+8616502530000", "+8667891234"}
    assert not wrong & {m["to"] for m in gateway.snapshot()["messages"]}


# Needs whose words are apart (or written as a temperature), in a category that alone is P3.
P1_APART = [
    "宝宝从昨天晚上开始一直发烧，家里没有退烧药",
    "家里有个三个月大的婴儿，体温39度5",
    "My baby is 4 months old and has had a high fever since noon",
    "our newborn: temperature 39.5 C, no medicine at home",
    "У нас младенец, со вчерашнего дня температура 39,5",
    "老人在家晕倒了，需要送菜",
    "妻子要生了，家里没有吃的",
    "他说不想活了，家里没有吃的",
    "My wife is giving birth, we have no food",
]


async def test_needs_written_apart_take_the_fast_lane_and_come_out_p1(
    services: ServiceSet, kafka_bootstrap: str
) -> None:
    ids = [
        await submit(services, help_request(f"139 0002 {n:04d}", text, "food_supply"))
        for n, text in enumerate(P1_APART)
    ]
    ordinary = await submit(
        services, help_request("139 0003 0001", "需要买菜和大米", "food_supply")
    )
    wanted = {rid.encode() for rid in ids}

    fast = await read_topic(
        kafka_bootstrap,
        services.prefix + Topic.SUBMITTED_PRIORITY.value,
        until=lambda rs: wanted <= {r.key for r in rs},
        timeout=60,
    )
    assert wanted <= {r.key for r in fast}
    assert ordinary.encode() not in {r.key for r in fast}
    slow = await read_topic(
        kafka_bootstrap,
        services.prefix + Topic.SUBMITTED.value,
        until=lambda rs: ordinary.encode() in {r.key for r in rs},
        timeout=60,
    )
    assert not wanted & {r.key for r in slow}

    verified = await read_topic(
        kafka_bootstrap,
        services.prefix + Topic.VERIFIED_PRIORITY.value,
        until=lambda rs: wanted <= {r.key for r in rs},
        timeout=90,
    )
    priorities = {
        r.key.decode(): json.loads(r.value)["priority"]
        for r in verified
        if r.key in wanted and r.value is not None
    }
    assert priorities == dict.fromkeys(ids, "P1")
