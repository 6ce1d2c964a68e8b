"""Realistic, varied help requests and a client that submits them the way an app would.

Every submission carries its own Idempotency-Key and is retried with the same key after a
connection error, a timeout or a 5xx, so that a 202 is the only meaning of "accepted" and a
retry never creates a second request. What verify will decide is known up front from how the
body was built (valid → verified, a missing location where the category needs one →
needs_review, a meaningless description → rejected, a repeat of an earlier request from the
same phone → duplicate). The repeats come through a second channel: the 12345 hotline relays
them on the partner topic (:class:`PartnerRelay`).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import tomllib
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from services.intake.domain import partner_request_id
from shared.topics import Topic
from tests.chaos.context import REPO

Expected = Literal["verified", "needs_review", "rejected", "duplicate"]

CATEGORIES = (
    "medical",
    "food_supply",
    "transport",
    "health_code",
    "epidemic_policy",
    "education",
    "suggestion",
)
# Categories whose requests need a place (config/verify.toml [completeness]).
NEEDS_LOCATION = ("medical", "food_supply", "transport")
GREEN_GROUPS = ("pregnant", "elderly", "child", "disabled", "chronic_illness", "living_alone")

TEXTS: dict[str, dict[str, tuple[str, ...]]] = {
    "medical": {
        "zh": (
            "家里{n}位老人的降压药快吃完了",
            "需要胰岛素，{n}号楼独居老人",
            "孩子咳嗽{n}天，想买止咳药",
        ),
        "en": (
            "My mother's blood pressure pills run out in {n} days",
            "Need insulin for {n} people",
        ),
        "ru": (
            "Заканчиваются лекарства от давления, осталось на {n} дня",
            "Нужен инсулин, {n} человек",
        ),
    },
    "food_supply": {
        "zh": ("小区封控第{n}天，家里没有蔬菜了", "{n}口人，米面快吃完了，请帮忙送菜"),
        "en": ("We have had no fresh food for {n} days", "Family of {n} needs groceries"),
        "ru": ("Нет продуктов уже {n} дня", "Семье из {n} человек нужны продукты"),
    },
    "transport": {
        "zh": ("需要通行证去医院复查，第{n}次申请", "{n}号卡口不让通行，要去上班"),
        "en": (
            "Need a pass to reach the hospital, attempt {n}",
            "Checkpoint {n} blocks the road to work",
        ),
        "ru": ("Нужен пропуск в больницу, попытка {n}", "Блокпост {n} не пропускает на работу"),
    },
    "health_code": {
        "zh": ("健康码变红{n}天了，核酸都是阴性", "黄码申诉第{n}次还没处理"),
        "en": ("Health code red for {n} days although tests are negative",),
        "ru": ("Код здоровья красный {n} дней, тесты отрицательные",),
    },
    "epidemic_policy": {
        "zh": ("请问{n}号楼什么时候解封", "外地返郑需要隔离几天？第{n}个问题"),
        "en": ("When will building {n} be reopened?",),
        "ru": ("Когда снимут карантин с дома {n}?",),
    },
    "education": {
        "zh": ("孩子{n}年级网课没有设备", "高三学生第{n}次考试如何参加"),
        "en": ("My child in grade {n} has no device for online classes",),
        "ru": ("У ребёнка в {n} классе нет компьютера для уроков",),
    },
    "suggestion": {
        "zh": ("建议在{n}号小区增加核酸检测点", "建议志愿者分{n}组送菜"),
        "en": ("Suggest {n} more testing points in our area",),
        "ru": ("Предлагаю открыть ещё {n} пунктов тестирования",),
    },
}
# Descriptions verify rejects (punctuation only, one character repeated).
MEANINGLESS = ("？？？？", "啊啊啊啊啊", "......", "ааааа")


def _districts() -> list[dict[str, Any]]:
    data = tomllib.loads((REPO / "config" / "jurisdiction.toml").read_text(encoding="utf-8"))
    return list(data["districts"])


@dataclass
class Submission:
    """One request to submit: its body, its retry key and what verify should decide."""

    index: int
    body: dict[str, Any]
    expected: Expected
    key: str = field(default_factory=lambda: uuid.uuid4().hex)
    client: str = ""
    original: int | None = None  # for a repeat: the index of the request it repeats
    request_id: str = ""  # set when accepted
    attempts: int = 0
    outcome: str = ""  # "accepted" or why it never was


def address_of(n: int) -> str:
    """A distinct client address per citizen (10.0.0.0/8)."""
    return f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


def phone_of(n: int) -> str:
    """A distinct valid mobile number (139 + 8 digits) in one of the shapes people type."""
    digits = f"139{n % 10**8:08d}"
    shape = n % 4
    if shape == 0:
        return digits
    if shape == 1:
        return f"{digits[:3]} {digits[3:7]} {digits[7:]}"
    if shape == 2:
        return f"+86-{digits[:3]}-{digits[3:7]}-{digits[7:]}"
    return f"0086 {digits}"


def plan(total: int, *, seed: int = 20220105, repeats: float = 0.01) -> list[Submission]:
    """``total`` distinct requests plus repeats of about ``repeats`` of them (sent later)."""
    rng = random.Random(seed)
    districts = _districts()
    subs: list[Submission] = []
    for i in range(total):
        category = CATEGORIES[rng.randrange(len(CATEGORIES))]
        language = rng.choices(("zh", "en", "ru"), weights=(80, 12, 8))[0]
        text = rng.choice(TEXTS[category][language]).format(n=rng.randint(2, 40))
        # The index makes every text distinct, as real texts are.
        description = f"{text}（{i}）" if language == "zh" else f"{text} (#{i})"
        district = districts[rng.randrange(len(districts))]
        location: dict[str, Any] | None = {
            "district": rng.choice((district["code"], district["name_zh"], district["name_en"])),
            "address": f"{rng.randint(1, 300)}号院{rng.randint(1, 30)}号楼",
        }
        if rng.random() < 0.6 and location is not None:
            location["lat"] = round(district["lat"] + rng.uniform(-0.01, 0.01), 5)
            location["lon"] = round(district["lon"] + rng.uniform(-0.01, 0.01), 5)
        groups: list[str] = []
        if rng.random() < 0.15:
            groups = rng.sample(GREEN_GROUPS, rng.randint(1, 2))
        expected: Expected = "verified"
        roll = rng.random()
        if roll < 0.07 and category in NEEDS_LOCATION:
            location = None  # verify holds it for a human: incomplete:location
            expected = "needs_review"
        elif roll > 0.97:
            description = rng.choice(MEANINGLESS)
            expected = "rejected"
        body: dict[str, Any] = {
            "category": category,
            "description": description,
            "contact": {
                "name": rng.choice(("王女士", "李先生", "Anna", "张阿姨", "Иван")),
                "phone": phone_of(i),
            },
            "special_groups": groups,
            "language": language,
        }
        if location is not None:
            body["location"] = location
        subs.append(Submission(i, body, expected, client=f"chaos-app-{i % 64}"))
    originals = [s for s in subs if s.expected == "verified"]
    count = int(total * repeats)
    for n, original in enumerate(rng.sample(originals, min(count, len(originals)))):
        # The same citizen's request again, through another channel: the hotline relays it.
        subs.append(
            Submission(
                total + n, dict(original.body), "duplicate", client=RELAY, original=original.index
            )
        )
    return subs


RELAY = "hotline-12345"  # a partner of config/partners.toml


class PartnerRelay:
    """The 12345 hotline passing requests on over ``help.partner.inbound``: each record keyed by
    an external id of its own, which names the request (intake's ``partner_request_id``). A
    record is accepted once the broker acknowledged it (acks=all); a broker away is waited for."""

    def __init__(self, bootstrap: str, prefix: str, *, give_up_after: float = 300.0) -> None:
        self.bootstrap = bootstrap
        self.topic = prefix + Topic.PARTNER_INBOUND.value
        self.give_up_after = give_up_after

    async def relay_all(self, subs: list[Submission]) -> None:
        for sub in subs:
            await self.relay(sub)

    async def relay(self, sub: Submission) -> None:
        external_id = f"chaos-{sub.key}"
        value = {**sub.body, "partner_id": RELAY, "external_id": external_id}
        raw = json.dumps(value, ensure_ascii=False).encode()
        deadline = time.monotonic() + self.give_up_after
        while True:
            sub.attempts += 1
            producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=True
            )
            try:
                await producer.start()
                await producer.send_and_wait(self.topic, raw, key=external_id.encode())
            except KafkaError:
                if time.monotonic() > deadline:
                    sub.outcome = "gave_up"
                    return
                await asyncio.sleep(1.0)
                continue
            finally:
                await producer.stop()
            sub.request_id = partner_request_id(RELAY, external_id)
            sub.outcome = "accepted"
            return


@dataclass
class Tally:
    """What the clients saw, by kind (no bodies, no numbers)."""

    accepted: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    gave_up: int = 0
    first_accept: float = 0.0
    last_accept: float = 0.0

    def note(self, kind: str) -> None:
        self.statuses[kind] += 1

    @property
    def http_5xx(self) -> int:
        return sum(n for k, n in self.statuses.items() if k.startswith("5"))


class Submitter:
    """Many concurrent app clients; each submission retried with its key until a 202."""

    def __init__(
        self, base_url: str, *, concurrency: int = 48, give_up_after: float = 300.0
    ) -> None:
        self.base_url = base_url
        self.concurrency = concurrency
        self.give_up_after = give_up_after
        self.tally = Tally()
        self.on_accept: Callable[[Submission], None] | None = None
        self.stop: asyncio.Event | None = None  # set: no new submissions start

    async def submit_all(self, subs: list[Submission]) -> None:
        queue: asyncio.Queue[Submission] = asyncio.Queue()
        for sub in subs:
            queue.put_nowait(sub)
        limits = httpx.Limits(
            max_connections=self.concurrency, max_keepalive_connections=self.concurrency
        )
        async with httpx.AsyncClient(base_url=self.base_url, timeout=30, limits=limits) as http:

            async def worker() -> None:
                while self.stop is None or not self.stop.is_set():
                    try:
                        sub = queue.get_nowait()
                    except asyncio.QueueEmpty:
                        return
                    await self.submit(http, sub)

            await asyncio.gather(*(worker() for _ in range(min(self.concurrency, len(subs)))))

    async def submit(self, http: httpx.AsyncClient, sub: Submission) -> None:
        deadline = time.monotonic() + self.give_up_after
        delay = 0.5
        # Each citizen from an address of their own, as a load balancer in front of intake
        # forwards it (the chaos run trusts the loopback proxy: INTAKE_TRUSTED_PROXIES).
        headers = {
            "Idempotency-Key": sub.key,
            "X-Client-Id": sub.client,
            "X-Forwarded-For": address_of(sub.index),
        }
        while True:
            sub.attempts += 1
            wait = delay
            try:
                response = await http.post("/v1/requests", json=sub.body, headers=headers)
            except httpx.TimeoutException:
                self.tally.note("timeout")
            except httpx.TransportError:
                self.tally.note("connection_error")
            else:
                self.tally.note(str(response.status_code))
                if response.status_code == 202:
                    sub.request_id = str(response.json()["request_id"])
                    sub.outcome = "accepted"
                    now = time.monotonic()
                    self.tally.accepted += 1
                    self.tally.first_accept = self.tally.first_accept or now
                    self.tally.last_accept = now
                    if self.on_accept is not None:
                        self.on_accept(sub)
                    return
                if response.status_code == 429:
                    wait = float(response.headers.get("Retry-After") or 1)
                elif response.status_code < 500:
                    sub.outcome = f"refused_{response.status_code}"
                    self.tally.gave_up += 1
                    return
            # A stop only keeps new submissions from starting: one already under way keeps
            # its retries, so that whatever intake published is answered and counted.
            if time.monotonic() + wait > deadline:
                sub.outcome = "gave_up"
                self.tally.gave_up += 1
                return
            await asyncio.sleep(wait)
            delay = min(5.0, delay * 2)
