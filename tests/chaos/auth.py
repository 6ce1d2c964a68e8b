"""Bad credentials at volume: every authenticated route refuses every wrong key, signature,
token and replay (401/403), and accepts none.

Kinds (each tried ``per_kind`` times, with varied wrong values):
partner HTTP unsigned, wrongly signed, stale or future timestamp, replayed nonce, unknown
partner; Open311 POST without or with a wrong api_key, or another role's key; verifier routes
and the command centre's summary without or with a wrong key, or another role's key; survey
answers without or with a wrong tracking token; the full status view with a wrong token.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx

from services.intake import domain as intake_domain
from shared.topics import SERVICES
from tests.chaos.bad_input import start_services
from tests.chaos.context import ChaosContext, Row
from tests.chaos.credentials import (
    API_KEY,
    COMMAND_KEY,
    OTHER_SECRET,
    PARTNER,
    PARTNER_SECRET,
    TRACKING_SECRET,
    VERIFIER_KEY,
    service_env,
    sign,
)
from tests.chaos.http_strategies import encode
from tests.chaos.personal_data import Person, people, request_body
from tests.support.services import ServiceSet


def near_misses(token: str, other: str, *keys: str) -> list[str]:
    """Tokens that must open nothing: another request's, one character off, upper-cased, a
    random one, and other roles' keys."""
    off_by_one = token[:-1] + ("0" if token[-1] != "0" else "1")
    return [other, off_by_one, token.upper(), uuid.uuid4().hex, *keys]


def wrong_keys(key: str, *more: str) -> list[str]:
    """Keys that must open nothing although they look like ``key``: one character too many or
    too few, upper-cased, a random one, and ``more``."""
    return [key + "x", key.upper(), key[:-1], uuid.uuid4().hex, *more]


REFUSED = (401, 403)


@dataclass
class KindTally:
    tried: int = 0
    refused: int = 0
    accepted: int = 0  # 2xx: a wrong credential let in — must stay 0
    other: Counter[int] = field(default_factory=Counter)  # neither refused nor accepted

    @property
    def bad(self) -> int:
        return self.accepted + sum(self.other.values())


@dataclass
class AuthResult:
    kinds: dict[str, KindTally]
    seconds: float


Attempt = Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]]


def _stamp(offset: float = 0) -> str:
    return str(int(time.time() + offset))


async def attack(services: ServiceSet, per_kind: int, *, citizens: list[Person]) -> AuthResult:
    """Try every kind of bad credential ``per_kind`` times; tally the answers."""
    started = time.monotonic()
    rng = random.Random(per_kind)
    intake, verify, route, notify = (services.url(s) for s in SERVICES)
    async with httpx.AsyncClient(timeout=30) as http:
        # Two real requests: the survey and status views need ids their services know.
        receipts = []
        for citizen in citizens[:2]:
            answer = await http.post(f"{intake}/v1/requests", json=request_body(citizen))
            answer.raise_for_status()
            receipts.append(answer.json())
        rid, token = receipts[0]["request_id"], receipts[0]["tracking_token"]
        other_token = receipts[1]["tracking_token"]

        def partner_body(i: int) -> bytes:
            citizen = citizens[i % len(citizens)]
            value = {**request_body(citizen), "partner_id": PARTNER, "external_id": f"auth-{i}"}
            if i >= 10_000:  # a legitimate original: its own phone, clear of the rate limit
                value["contact"] = {"phone": f"139{i:08d}"}
            return encode(value, "utf8")

        async def post_partner(
            client: httpx.AsyncClient, body: bytes, headers: dict[str, str]
        ) -> httpx.Response:
            return await client.post(f"{intake}/v1/partner/requests", content=body, headers=headers)

        async def unsigned(client: httpx.AsyncClient, i: int) -> httpx.Response:
            body = partner_body(i)
            full = sign(body)
            drop = rng.sample(
                ["X-Partner-Id", "X-Timestamp", "X-Nonce", "X-Signature"], rng.randint(1, 4)
            )
            return await post_partner(
                client, body, {k: v for k, v in full.items() if k not in drop}
            )

        async def wrong_signature(client: httpx.AsyncClient, i: int) -> httpx.Response:
            body = partner_body(i)
            stamp, nonce = _stamp(), uuid.uuid4().hex
            headers = sign(body, partner=PARTNER, secret=PARTNER_SECRET, stamp=stamp, nonce=nonce)
            variant = i % 5
            if variant == 0:  # random hex
                headers["X-Signature"] = uuid.uuid4().hex * 2
            elif variant == 1:  # the wrong secret
                headers["X-Signature"] = intake_domain.partner_signature(
                    "not-the-secret", stamp, nonce, body
                )
            elif variant == 2:  # another partner's secret, this partner's id
                headers["X-Signature"] = intake_domain.partner_signature(
                    OTHER_SECRET, stamp, nonce, body
                )
            elif variant == 3:  # signed, then the body changed
                body = body.replace(b"food_supply", b"medical")
            else:  # signed over another nonce
                headers["X-Nonce"] = uuid.uuid4().hex
            return await post_partner(client, body, headers)

        async def stale(client: httpx.AsyncClient, i: int) -> httpx.Response:
            body = partner_body(i)
            stamp = [_stamp(-3600), _stamp(-301 - i), _stamp(3600), "1e20", "nan", "-1", "0x10"][
                i % 7
            ]
            return await post_partner(
                client,
                body,
                sign(
                    body,
                    partner=PARTNER,
                    secret=PARTNER_SECRET,
                    stamp=stamp,
                    nonce=uuid.uuid4().hex,
                ),
            )

        replay_pool: list[tuple[bytes, dict[str, str]]] = []

        async def replayed(client: httpx.AsyncClient, i: int) -> httpx.Response:
            if not replay_pool or i % 10 == 0:
                # A legitimate request first (accepted, not counted); the attacks replay it.
                body = partner_body(10_000 + i)
                headers = sign(body)
                first = await post_partner(client, body, headers)
                if first.status_code != 202:
                    raise AssertionError(f"the legitimate request was refused: {first.text}")
                replay_pool.append((body, headers))
            body, headers = replay_pool[-1]
            if i % 2:  # the same nonce on a fresh timestamp and a new body, correctly signed
                body = partner_body(20_000 + i)
                headers = sign(
                    body,
                    partner=PARTNER,
                    secret=PARTNER_SECRET,
                    stamp=_stamp(),
                    nonce=headers["X-Nonce"],
                )
            return await post_partner(client, body, headers)

        async def unknown_partner(client: httpx.AsyncClient, i: int) -> httpx.Response:
            body = partner_body(i)
            # Unlisted ids, a listed partner without a configured secret, a near miss.
            who = ["no-such-partner", "grid-jinshui", "HOTLINE-12345", "hotline-123456"][i % 4]
            headers = sign(
                body, partner=who, secret=PARTNER_SECRET, stamp=_stamp(), nonce=uuid.uuid4().hex
            )
            return await post_partner(client, body, headers)

        def open311_form(i: int) -> dict[str, str]:
            citizen = citizens[i % len(citizens)]
            return {
                "service_code": "food_supply",
                "description": citizen.description,
                "phone": citizen.phone,
                "lat": "34.77",
                "long": "113.66",
                "attribute[district]": "jinshui",
            }

        async def open311_no_key(client: httpx.AsyncClient, i: int) -> httpx.Response:
            form = open311_form(i)
            if i % 2:
                form["api_key"] = ""
            return await client.post(f"{intake}/open311/v2/requests.json", data=form)

        role_keys: list[str] = [
            API_KEY,
            VERIFIER_KEY,
            COMMAND_KEY,
            PARTNER_SECRET,
            OTHER_SECRET,
            TRACKING_SECRET,
            token,
        ]

        def other_role(own: str, i: int) -> str:
            """Another role's key, or the request's tracking token, in place of ``own``."""
            others = [k for k in role_keys if k != own]
            return others[i % len(others)]

        async def open311_wrong_key(client: httpx.AsyncClient, i: int) -> httpx.Response:
            form = open311_form(i)
            form["api_key"] = wrong_keys(API_KEY, f" {API_KEY}")[i % 5]
            fmt = "xml" if i % 3 == 0 else "json"
            return await client.post(f"{intake}/open311/v2/requests.{fmt}", data=form)

        async def open311_other_role(client: httpx.AsyncClient, i: int) -> httpx.Response:
            form = {**open311_form(i), "api_key": other_role(API_KEY, i)}
            return await client.post(f"{intake}/open311/v2/requests.json", data=form)

        def verifier_call(
            key: str | None,
        ) -> Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]]:
            async def call(client: httpx.AsyncClient, i: int) -> httpx.Response:
                headers = {} if key is None else {"X-Verifier-Key": key}
                route = i % 3
                if route == 0:
                    return await client.get(f"{verify}/v1/review", headers=headers)
                if route == 1:
                    return await client.post(f"{verify}/v1/review/{rid}/claim", headers=headers)
                return await client.post(
                    f"{verify}/v1/review/{rid}/decision",
                    headers=headers,
                    json={"decision": "verify"},
                )

            return call

        async def verifier_no_key(client: httpx.AsyncClient, i: int) -> httpx.Response:
            return await verifier_call(None if i % 2 else "")(client, i)

        async def verifier_wrong_key(client: httpx.AsyncClient, i: int) -> httpx.Response:
            return await verifier_call(wrong_keys(VERIFIER_KEY, "chaos-verifier")[i % 5])(client, i)

        async def verifier_other_role(client: httpx.AsyncClient, i: int) -> httpx.Response:
            return await verifier_call(other_role(VERIFIER_KEY, i))(client, i)

        async def command(client: httpx.AsyncClient, key: str | None) -> httpx.Response:
            headers = {} if key is None else {"X-Command-Key": key}
            return await client.get(f"{route}/v1/command/summary", headers=headers)

        async def command_no_key(client: httpx.AsyncClient, i: int) -> httpx.Response:
            return await command(client, None if i % 2 else "")

        async def command_wrong_key(client: httpx.AsyncClient, i: int) -> httpx.Response:
            digest = hashlib.sha256(COMMAND_KEY.encode()).hexdigest()
            return await command(client, wrong_keys(COMMAND_KEY, "chaos-desk", digest)[i % 6])

        async def command_other_role(client: httpx.AsyncClient, i: int) -> httpx.Response:
            return await command(client, other_role(COMMAND_KEY, i))

        async def survey_no_token(client: httpx.AsyncClient, i: int) -> httpx.Response:
            headers = {} if i % 2 else {"X-Tracking-Token": ""}
            return await client.post(
                f"{notify}/v1/requests/{rid}/survey",
                headers=headers,
                json={"satisfied": bool(i % 3)},
            )

        async def survey_wrong_token(client: httpx.AsyncClient, i: int) -> httpx.Response:
            wrong = near_misses(token, other_token, VERIFIER_KEY, API_KEY)[i % 6]
            return await client.post(
                f"{notify}/v1/requests/{rid}/survey",
                headers={"X-Tracking-Token": wrong},
                json={"satisfied": bool(i % 3)},
            )

        async def full_view_wrong_token(client: httpx.AsyncClient, i: int) -> httpx.Response:
            wrong = near_misses(token, other_token, VERIFIER_KEY, TRACKING_SECRET)[i % 6]
            if i % 2:
                return await client.get(f"{intake}/v1/requests/{rid}", params={"token": wrong})
            return await client.get(
                f"{intake}/v1/requests/{rid}", headers={"X-Tracking-Token": wrong}
            )

        attempts: dict[str, Attempt] = {
            "partner HTTP unsigned": unsigned,
            "partner HTTP wrongly signed": wrong_signature,
            "partner HTTP stale timestamp": stale,
            "partner HTTP replayed nonce": replayed,
            "partner HTTP unknown partner": unknown_partner,
            "Open311 POST without api_key": open311_no_key,
            "Open311 POST wrong api_key": open311_wrong_key,
            "Open311 POST another role's key": open311_other_role,
            "verifier without key": verifier_no_key,
            "verifier wrong key": verifier_wrong_key,
            "verifier another role's key": verifier_other_role,
            "command summary without key": command_no_key,
            "command summary wrong key": command_wrong_key,
            "command summary another role's key": command_other_role,
            "survey without token": survey_no_token,
            "survey wrong token": survey_wrong_token,
            "full status view wrong token": full_view_wrong_token,
        }
        kinds = {name: KindTally() for name in attempts}
        gate = asyncio.Semaphore(8)

        async def one(name: str, i: int) -> None:
            async with gate:
                answer = await attempts[name](http, i)
            tally = kinds[name]
            tally.tried += 1
            if answer.status_code in REFUSED:
                tally.refused += 1
            elif 200 <= answer.status_code < 300:
                tally.accepted += 1
            else:
                tally.other[answer.status_code] += 1

        # Replays run in order (each needs its legitimate original first); the rest at once.
        for i in range(per_kind):
            await one("partner HTTP replayed nonce", i)
        await asyncio.gather(
            *(
                one(name, i)
                for name in attempts
                for i in range(per_kind)
                if name != "partner HTTP replayed nonce"
            )
        )
    return AuthResult(kinds, time.monotonic() - started)


def rows(result: AuthResult) -> list[Row]:
    return [
        Row(
            check=f"refused: {name}",
            tried=t.tried,
            ok=t.refused,
            bad=t.bad,
            meaning="answered 401/403; bad = accepted or any other answer",
            seconds=result.seconds,
            fields={"auth_accepted": t.accepted, "auth_refused": t.refused},
        )
        for name, t in result.kinds.items()
    ]


def summary(result: AuthResult) -> str:
    return "\n".join(
        f"{name:36} tried {t.tried} refused {t.refused} accepted {t.accepted} other {dict(t.other)}"
        for name, t in result.kinds.items()
    )


async def run(ctx: ChaosContext) -> list[Row]:
    """Every kind of bad credential, 200 times each at scale 1."""
    services = await start_services(ctx, **service_env())
    try:
        ctx.say(f"auth: {ctx.count(200, 10)} tries of each kind of bad credential")
        result = await attack(
            services, ctx.count(200, 10), citizens=people(6, seed=int(time.time()))
        )
    finally:
        await asyncio.to_thread(services.stop)
    return rows(result)
