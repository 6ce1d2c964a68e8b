"""Bad input at volume: generated junk against every HTTP API and on every input topic.

HTTP: hypothesis draws requests for each endpoint of the four services — wrong types, missing
and extra fields, huge, unicode, NUL and lone-surrogate strings, NaN and infinities, nested junk,
bytes that are not JSON or not UTF-8, wrong content types, bodies over the size limit, junk
headers, unknown paths and methods, and raw bytes that are not HTTP at all. Every answer must
be a 4xx (a 2xx when the draw happens to be valid is counted apart); no 5xx, no dropped
connection, and every service still alive and ready afterwards.

Kafka: malformed records on every topic a stage consumes — not JSON, invalid UTF-8, wrong
schema, over 256 KiB, empty, tombstones, garbage CloudEvents headers, unknown request ids.
Each consumer must account for each record: a dead letter on ``help.dlq.<service>`` whose
origin headers point back at the record (same bytes), or ignored by a rule of its design
(:func:`expected`). Afterwards a valid request still goes through all four stages.

Both floods run against services started here (``make_services``) with the Open311, partner and
verifier keys they need; the Kafka flood also lifts the consecutive dead-letter limit, which a
separate test shows halting a stage.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import math
import random
import re
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from services.intake import domain as intake_domain
from shared.envelope import CE_TYPE, event_type
from shared.kafka import ensure_topics
from shared.schemas import (
    DispatchJob,
    LifecycleEvent,
    PartnerHelpRequest,
    RejectedRequest,
    ReviewRequest,
    StatusEvent,
    SubmittedRequest,
    SurveyAnswer,
    VerifiedRequest,
)
from shared.settings import ServiceSettings
from shared.stage import DLQ_ORIGIN_OFFSET, DLQ_ORIGIN_PARTITION, DLQ_ORIGIN_TOPIC, DLQ_REASON
from shared.topics import DISPATCH_TOPICS, SERVICES, ServiceName, Topic, dlq_topic
from tests.chaos.context import ChaosContext, Row
from tests.support.services import ServiceSet

# --- credentials of the services under test (local-only values) --------------------------------

API_KEY = "chaos-open311-key"
PARTNER = "hotline-12345"
PARTNER_SECRET = "chaos-partner-secret-hotline"
OTHER_PARTNER = "hospital-zzu1"
OTHER_SECRET = "chaos-partner-secret-hospital"
VERIFIER = "chaos-verifier"
VERIFIER_KEY = "chaos-verifier-key"
COMMAND_DESK = "chaos-desk"
COMMAND_KEY = "chaos-command-key"
TRACKING_SECRET = "chaos-tracking-secret"
SURVEY_TYPE = event_type("survey.answer")


def service_env(*, dlq_limit: int | None = None) -> dict[str, str]:
    """Environment for the services under test: keys for every authenticated route."""
    env = {
        "INTAKE_OPEN311_API_KEYS": API_KEY,
        "INTAKE_PARTNER_SECRETS": json.dumps(
            {PARTNER: PARTNER_SECRET, OTHER_PARTNER: OTHER_SECRET}
        ),
        "INTAKE_TRACKING_SECRET": TRACKING_SECRET,
        "VERIFY_REVIEWER_KEYS": json.dumps({VERIFIER: VERIFIER_KEY}),
        "ROUTE_COMMAND_KEYS": json.dumps(
            {COMMAND_DESK: hashlib.sha256(COMMAND_KEY.encode()).hexdigest()}
        ),
    }
    if dlq_limit is not None:
        for service in SERVICES:
            env[f"{service.upper()}_DLQ_CONSECUTIVE_LIMIT"] = str(dlq_limit)
    return env


def sign(body: bytes, *, secret: str = PARTNER_SECRET, partner: str = PARTNER) -> dict[str, str]:
    """Headers of a correctly signed partner request, with a fresh nonce."""
    stamp = str(int(time.time()))
    nonce = uuid.uuid4().hex
    return {
        "content-type": "application/json",
        "X-Partner-Id": partner,
        "X-Timestamp": stamp,
        "X-Nonce": nonce,
        "X-Signature": intake_domain.partner_signature(secret, stamp, nonce, body),
    }


# --- personal data: what the floods submit and the logs must never show -------------------------

_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
_GIVEN = "秀英桂兰玉梅建华志强晓明丽娟海燕春生国庆文静子涵雨萱浩然"
_STREETS = ("金水路", "花园路", "农业路", "中原路", "建设路", "大学路", "紫荆山路", "经三路")


@dataclass(frozen=True)
class Person:
    """One made-up citizen; every value is unique to the run, so a hit in a log is a leak."""

    name: str
    phone: str  # as submitted (one of many shapes)
    digits: str  # the national number, digits only
    address: str
    description: str

    def needles(self) -> list[str]:
        """Strings that must not appear in any log line."""
        return [
            self.name,
            self.phone,
            self.digits,
            f"+86{self.digits}",
            self.address,
            self.description,
        ]


def _fullwidth(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if c.isdigit() else c for c in text)


def people(count: int, *, seed: int) -> list[Person]:
    """``count`` citizens with mobile and landline numbers in the shapes phones arrive in."""
    rng = random.Random(seed)
    out: list[Person] = []
    for i in range(count):
        marker = "".join(rng.choice(_GIVEN) for _ in range(3))
        name = rng.choice(_SURNAMES) + "".join(rng.choice(_GIVEN) for _ in range(2)) + marker[:1]
        if i % 7 == 6:
            digits = f"03716{rng.randrange(10**6, 10**7)}"  # Zhengzhou landlines: 0371-6xxx xxxx
            phone = f"0371-{digits[4:8]} {digits[8:]}"
        else:
            digits = f"1{rng.choice('38')}{rng.randrange(10**8, 10**9)}"  # 13x, 18x: all assigned
            shapes = (
                digits,
                f"{digits[:3]} {digits[3:7]} {digits[7:]}",
                f"{digits[:3]}-{digits[3:7]}-{digits[7:]}",
                f"+86 {digits}",
                f"+86 {digits[:3]} {digits[3:7]} {digits[7:]}",
                _fullwidth(digits),
            )
            phone = shapes[i % len(shapes)]
        address = f"{rng.choice(_STREETS)}{rng.randrange(1, 999)}号{marker}小区{i}栋"
        description = f"家里没有蔬菜了，{marker}需要买菜，门牌{rng.randrange(10**5, 10**6)}"
        out.append(Person(name, phone, digits, address, description))
    return out


def request_body(person: Person, **change: Any) -> dict[str, Any]:
    """A valid help request for ``person`` (verified automatically: food, a real district)."""
    return {
        "category": "food_supply",
        "description": person.description,
        "contact": {"name": person.name, "phone": person.phone},
        "location": {"district": "jinshui", "address": person.address, "lat": 34.77, "lon": 113.66},
        "language": "zh",
        **change,
    }


_SEPARATORS = re.compile(r"[\s\-()（）]")


def personal_data_in_logs(log_files: Iterable[Path], citizens: Sequence[Person]) -> list[str]:
    """Every (file, line number, what) where a citizen's personal data shows in a log.

    Lines are searched as written, with JSON escapes undone, and with separators removed (a
    phone number split by spaces or dashes is still a phone number)."""
    needles = [(n, p) for p in citizens for n in p.needles()]
    digit_needles = [p.digits for p in citizens]
    found: list[str] = []
    for path in log_files:
        if not path.exists():
            continue
        for number, line in enumerate(path.read_text("utf-8", errors="replace").splitlines(), 1):
            texts = [line]
            with contextlib.suppress(ValueError):
                texts.append(json.dumps(json.loads(line), ensure_ascii=False))
            for text in texts:
                squeezed = _SEPARATORS.sub("", text)
                hits = {n for n, _ in needles if n in text}
                hits |= {d for d in digit_needles if d in squeezed}
                for hit in sorted(hits):
                    found.append(f"{path.name}:{number}: {hit[:12]}…")
    return sorted(set(found))


def log_files(services: ServiceSet) -> list[Path]:
    return [services.log_dir / f"{services.prefix}{s}.log" for s in SERVICES]


# --- generated HTTP requests ----------------------------------------------------------------------

Service = ServiceName


@dataclass(frozen=True)
class HttpCase:
    """One generated request; ``signed`` ones get a fresh partner signature when sent."""

    kind: str
    service: Service
    method: str
    path: str
    headers: tuple[tuple[str, bytes], ...] = ()
    body: bytes | None = None
    signed: bool = False


_ODD = [
    "",
    " ",
    "\x00",
    "\x00" * 17,
    "\ud800",
    "a\udfffb",
    "\u202e\u0644",
    "𝕳𝖊𝖑𝖕",
    "💊🚑",
    "NaN",
    "Infinity",
    "-0",
    "1e999",
    "null",
    "true",
    "[]",
    "{}",
    "' OR 1=1 --",
    "{{7*7}}",
    "../../../etc/passwd",
    "%00",
    "%ff",
    "\r\n\r\n",
    "\t",
    "\\",
    '"',
    "<x/>",
    "&amp;",
    "𓀀",
    "медицина",
    "急需胰岛素",
    "\u200b",
    "\ufeff",
    "\x7f",
    "\x1b[31m",
]
_CHUNKS = ["a", "中", "\x00", "😀", "\ud800", " ", "9"]


def odd_text(max_size: int = 40) -> st.SearchStrategy[str]:
    return st.one_of(
        st.text(max_size=max_size),
        st.sampled_from(_ODD),
        st.builds(lambda c, n: c * n, st.sampled_from(_CHUNKS), st.integers(50, 3000)),
    )


def _floats() -> st.SearchStrategy[float]:
    return st.one_of(st.floats(), st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -0.0]))


def junk_json() -> st.SearchStrategy[Any]:
    scalars = st.one_of(
        st.none(), st.booleans(), st.integers(-(2**70), 2**70), _floats(), odd_text()
    )
    return st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(odd_text(12), inner, max_size=4)
        ),
        max_leaves=10,
    )


def _set(doc: Any, path: Sequence[str], value: Any, *, delete: bool = False) -> Any:
    if not path:
        return value
    if not isinstance(doc, dict):
        return doc
    out = dict(doc)
    head, rest = path[0], path[1:]
    if rest:
        out[head] = _set(out.get(head, {}), rest, value, delete=delete)
    elif delete:
        out.pop(head, None)
    else:
        out[head] = value
    return out


_FIELDS: tuple[tuple[str, ...], ...] = (
    (),
    ("category",),
    ("description",),
    ("contact",),
    ("contact", "phone"),
    ("contact", "name"),
    ("location",),
    ("location", "lat"),
    ("location", "lon"),
    ("location", "district"),
    ("location", "address"),
    ("special_groups",),
    ("language",),
    ("partner_id",),
    ("external_id",),
    ("unexpected",),
    ("contact", "unexpected"),
)


def mutated(base: dict[str, Any]) -> st.SearchStrategy[Any]:
    """``base`` with one to three fields replaced by junk, deleted, or added."""
    change = st.tuples(st.sampled_from(_FIELDS), st.booleans(), junk_json())

    def apply(changes: list[tuple[tuple[str, ...], bool, Any]]) -> Any:
        doc: Any = base
        for path, delete, value in changes:
            doc = _set(doc, path, value, delete=delete and bool(path))
        return doc

    return st.lists(change, min_size=1, max_size=3).map(apply)


def encode(doc: Any, style: str) -> bytes:
    """JSON in one of several spellings: escaped, raw UTF-8 (lone surrogates as CESU bytes)."""
    if style == "ascii":
        return json.dumps(doc, ensure_ascii=True, allow_nan=True).encode()
    return json.dumps(doc, ensure_ascii=False, allow_nan=True).encode("utf-8", "surrogatepass")


def json_bodies(base: dict[str, Any]) -> st.SearchStrategy[tuple[str, bytes]]:
    """(kind, body): mutated or junk JSON, broken bytes, or over the 64 KiB limit."""
    styles = st.sampled_from(["ascii", "utf8"])
    return st.one_of(
        st.tuples(st.just("json_mutated"), st.builds(encode, mutated(base), styles)),
        st.tuples(st.just("json_junk"), st.builds(encode, junk_json(), styles)),
        st.tuples(
            st.just("bytes_junk"),
            st.one_of(
                st.binary(max_size=300),
                st.sampled_from(
                    [
                        b"{",
                        b"[1,",
                        b'{"a":}',
                        b"\xff\xfe\x00",
                        b"\xc3\x28",
                        b"{}" * 3,
                        b"\xed\xa0\x80",
                        b"\x00" * 64,
                        b"nul\x00l",
                    ]
                ),
                st.builds(lambda d, n: encode(d, "utf8")[:n], st.just(base), st.integers(1, 60)),
            ),
        ),
        st.tuples(
            st.just("oversized"),
            st.builds(
                lambda n, c: encode({**base, "description": c * n}, "utf8"),
                st.integers(70_000, 300_000),
                st.sampled_from(["x", "中"]),
            ),
        ),
        st.tuples(st.just("valid_body"), st.builds(encode, st.just(base), styles)),
    )


_CONTENT_TYPES = [
    "application/json",
    "application/json; charset=utf-8",
    "application/json; charset=latin-1",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=zz",
    "multipart/form-data",
    "application/xml",
    "garbage",
    "application/json\x7f",
    "*/*",
]


def header_values() -> st.SearchStrategy[bytes]:
    """Header values h11 will put on the wire: no CR, LF or NUL; latin-1 and UTF-8 bytes."""
    return st.one_of(
        odd_text(60).map(lambda t: t.encode("utf-8", "surrogatepass")),
        st.builds(lambda n: b"k" * n, st.integers(100, 9000)),
        st.binary(max_size=50),
    ).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"").replace(b"\x00", b"").strip())


def extra_headers(names: Sequence[str]) -> st.SearchStrategy[tuple[tuple[str, bytes], ...]]:
    return st.lists(st.tuples(st.sampled_from(list(names)), header_values()), max_size=3).map(tuple)


def segment() -> st.SearchStrategy[str]:
    return st.one_of(
        odd_text(30), st.uuids().map(str), st.just("x" * 300), st.sampled_from(["..", ".", "%2e"])
    ).map(lambda s: quote(s.encode("utf-8", "surrogatepass"), safe="") or "%20")


def queries() -> st.SearchStrategy[str]:
    names = st.sampled_from(
        [
            "token",
            "limit",
            "service_request_id",
            "service_code",
            "start_date",
            "end_date",
            "status",
            "api_key",
            "jurisdiction_id",
            "x",
        ]
    )
    pair = st.tuples(names, odd_text(30))
    return st.lists(pair, max_size=4).map(
        lambda ps: "&".join(
            f"{quote(k)}={quote(v.encode('utf-8', 'surrogatepass'), safe='')}" for k, v in ps
        )
    )


def _with_query(path: str, query: str) -> str:
    return f"{path}?{query}" if query else path


def intake_cases(base: dict[str, Any], known_id: str) -> st.SearchStrategy[HttpCase]:
    ctypes = st.sampled_from([*_CONTENT_TYPES, None])
    header_names = [
        "Idempotency-Key",
        "X-Client-Id",
        "X-Tracking-Token",
        "Accept",
        "Cookie",
        "Authorization",
        "X-Forwarded-For",
        "Content-Encoding",
        "Expect",
    ]

    def post_request(
        kb: tuple[str, bytes], ctype: str | None, headers: tuple[tuple[str, bytes], ...]
    ) -> HttpCase:
        kind, body = kb
        hs = headers + ((("content-type", ctype.encode()),) if ctype is not None else ())
        if ctype != "application/json" and kind == "valid_body":
            kind = "content_type"
        elif headers and kind == "valid_body":
            kind = "headers"
        return HttpCase(kind, "intake", "POST", "/v1/requests", hs, body)

    def get_request(rid: str, query: str, headers: tuple[tuple[str, bytes], ...]) -> HttpCase:
        return HttpCase(
            "path_query", "intake", "GET", _with_query(f"/v1/requests/{rid}", query), headers
        )

    def partner(
        kb: tuple[str, bytes],
        signed: bool,
        headers: tuple[tuple[str, bytes], ...],
    ) -> HttpCase:
        kind, body = kb
        return HttpCase(
            f"partner_{kind}" if signed else "partner_unsigned_junk",
            "intake",
            "POST",
            "/v1/partner/requests",
            headers,
            body,
            signed=signed,
        )

    partner_base = {**base, "partner_id": PARTNER, "external_id": "chaos-ext"}
    partner_headers = ["X-Partner-Id", "X-Timestamp", "X-Nonce", "X-Signature", "content-type"]
    return st.one_of(
        st.builds(post_request, json_bodies(base), ctypes, extra_headers(header_names)),
        st.builds(
            get_request,
            st.one_of(segment(), st.just(known_id)),
            queries(),
            extra_headers(["X-Tracking-Token", "Accept"]),
        ),
        st.builds(
            partner, json_bodies(partner_base), st.booleans(), extra_headers(partner_headers)
        ),
    )


def open311_cases() -> st.SearchStrategy[HttpCase]:
    fmt = st.one_of(st.sampled_from(["json", "xml"]), segment())
    fields = st.sampled_from(
        [
            "service_code",
            "description",
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
            "media_url",
            "attribute[special_groups][]",
            "attribute[language]",
            "attribute[district]",
            "attribute[x]",
            "attribute[",
            "api_key",
            "jurisdiction_id",
            "",
        ]
    )
    good = {
        "service_code": "food_supply",
        "description": "需要米面油",
        "lat": "34.77",
        "long": "113.66",
        "phone": "13900000000",
        "attribute[district]": "jinshui",
    }

    def form(
        f: str, key: str | None, overrides: list[tuple[str, str]], style: str, files: bool
    ) -> HttpCase:
        items = [(k, v) for k, v in good.items() if k not in {o[0] for o in overrides}]
        items += overrides
        if key is not None:
            items.append(("api_key", key))
        enc = [
            (k.encode("utf-8", "surrogatepass"), v.encode("utf-8", "surrogatepass"))
            for k, v in items
        ]
        if style == "multipart":
            boundary = b"chaosboundary"
            parts = []
            for k, v in enc:
                parts.append(
                    b"--"
                    + boundary
                    + b'\r\nContent-Disposition: form-data; name="'
                    + k.replace(b'"', b"")
                    + b'"\r\n\r\n'
                    + v
                    + b"\r\n"
                )
            if files:
                parts.append(
                    b"--" + boundary + b'\r\nContent-Disposition: form-data; name="media";'
                    b' filename="x.jpg"\r\nContent-Type: image/jpeg\r\n\r\n\xff\xd8\xff\r\n'
                )
            body = b"".join(parts) + b"--" + boundary + b"--\r\n"
            ctype = b"multipart/form-data; boundary=" + boundary
        elif style == "json":
            body, ctype = encode(dict(items), "utf8"), b"application/json"
        elif style == "broken_multipart":
            body, ctype = b"--zz\r\ngarbage\r\n\r\n", b"multipart/form-data; boundary=zz"
        else:
            body = b"&".join(
                quote(k, safe="[]").encode() + b"=" + quote(v, safe="").encode() for k, v in enc
            )
            ctype = b"application/x-www-form-urlencoded"
        return HttpCase(
            f"open311_post_{style}",
            "intake",
            "POST",
            f"/open311/v2/requests.{f}",
            (("content-type", ctype),),
            body,
        )

    def get(path: str, query: str) -> HttpCase:
        return HttpCase("open311_get", "intake", "GET", _with_query(f"/open311/v2/{path}", query))

    paths = st.one_of(
        st.builds(lambda f: f"services.{f}", fmt),
        st.builds(lambda s, f: f"services/{s}.{f}", segment(), fmt),
        st.builds(lambda f: f"requests.{f}", fmt),
        st.builds(lambda s, f: f"requests/{s}.{f}", segment(), fmt),
        st.builds(lambda s, f: f"tokens/{s}.{f}", segment(), fmt),
        st.builds(lambda a, b: f"{a}/{b}", segment(), segment()),
    )
    return st.one_of(
        st.builds(
            form,
            fmt,
            st.one_of(st.just(API_KEY), st.just(API_KEY), st.none(), odd_text(20)),
            st.lists(st.tuples(fields, odd_text(40)), max_size=5),
            st.sampled_from(["urlencoded", "urlencoded", "multipart", "json", "broken_multipart"]),
            st.booleans(),
        ),
        st.builds(get, paths, queries()),
    )


def verify_cases() -> st.SearchStrategy[HttpCase]:
    keys = st.one_of(
        st.just(VERIFIER_KEY.encode()), st.just(VERIFIER_KEY.encode()), header_values()
    )
    decision = st.fixed_dictionaries(
        {"decision": st.sampled_from(["verify", "reject", "duplicate"])},
        optional={
            "corrections": st.one_of(
                junk_json(),
                st.fixed_dictionaries(
                    {},
                    optional={
                        "phone": odd_text(50),
                        "district": odd_text(120),
                        "category": odd_text(15),
                        "priority": odd_text(3),
                    },
                ),
            ),
            "reason": odd_text(600),
            "duplicate_of": odd_text(150),
        },
    )
    bodies = st.one_of(
        st.builds(encode, mutated({"decision": "verify"}), st.just("utf8")),
        st.builds(encode, decision, st.just("ascii")),
        st.binary(max_size=100),
    )

    def case(kind: str, rid: str, key: bytes | None, body: bytes, query: str) -> HttpCase:
        headers: tuple[tuple[str, bytes], ...] = (("content-type", b"application/json"),)
        if key is not None:
            headers += (("X-Verifier-Key", key),)
        if kind == "list":
            return HttpCase(
                "verify_list", "verify", "GET", _with_query("/v1/review", query), headers
            )
        return HttpCase(
            f"verify_{kind}", "verify", "POST", f"/v1/review/{rid}/{kind}", headers, body
        )

    return st.builds(
        case,
        st.sampled_from(["list", "claim", "decision", "decision"]),
        st.one_of(segment(), st.uuids().map(str)),
        st.one_of(keys, st.none()),
        bodies,
        queries(),
    )


def notify_cases(known_id: str, known_token: str) -> st.SearchStrategy[HttpCase]:
    bodies = st.one_of(
        st.builds(encode, mutated({"satisfied": True, "comment": "谢谢"}), st.just("utf8")),
        st.builds(encode, junk_json(), st.just("ascii")),
        st.binary(max_size=100),
    )
    tokens = st.one_of(st.just(known_token.encode()), header_values(), st.none())

    def case(rid: str, token: bytes | None, body: bytes) -> HttpCase:
        headers: tuple[tuple[str, bytes], ...] = (("content-type", b"application/json"),)
        if token is not None:
            headers += (("X-Tracking-Token", token),)
        return HttpCase("survey", "notify", "POST", f"/v1/requests/{rid}/survey", headers, body)

    return st.builds(case, st.one_of(st.just(known_id), segment()), tokens, bodies)


def route_cases() -> st.SearchStrategy[HttpCase]:
    """Route's command-centre summary: right, wrong, junk or no key; junk queries."""
    keys = st.one_of(st.just(COMMAND_KEY.encode()), header_values(), st.none())

    def case(method: str, key: bytes | None, query: str) -> HttpCase:
        headers = () if key is None else (("X-Command-Key", key),)
        path = _with_query("/v1/command/summary", query)
        return HttpCase("command_summary", "route", method, path, headers)

    return st.builds(case, st.sampled_from(["GET", "GET", "GET", "POST"]), keys, queries())


def stray_cases() -> st.SearchStrategy[HttpCase]:
    """Unknown paths and wrong methods on every service (route serves only its operations)."""
    known = ["/healthz", "/readyz", "/metrics", "/v1/requests", "/v1/review", "/openapi.json"]

    def case(service: Service, method: str, path: str, body: bytes) -> HttpCase:
        return HttpCase("stray", service, method, path, (), body if method != "GET" else None)

    paths = st.one_of(
        st.sampled_from(known),
        st.builds(lambda a, b: f"/{a}/{b}", segment(), segment()),
    )
    return st.builds(
        case,
        st.sampled_from(list(SERVICES)),
        st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "HEAD"]),
        paths,
        st.binary(max_size=50),
    )


def all_cases(base: dict[str, Any], known_id: str, known_token: str) -> st.SearchStrategy[HttpCase]:
    return st.one_of(
        intake_cases(base, known_id),
        intake_cases(base, known_id),
        open311_cases(),
        open311_cases(),
        verify_cases(),
        notify_cases(known_id, known_token),
        route_cases(),
        stray_cases(),
    )


def generate(strategy: st.SearchStrategy[Any], count: int, *, seed: int) -> list[Any]:
    """``count`` draws from ``strategy`` (hypothesis, generate phase only, no database)."""
    out: list[Any] = []
    round_ = 0
    while len(out) < count:

        @settings(
            max_examples=count - len(out),
            database=None,
            phases=[Phase.generate],
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
        @hypothesis_seed(seed + round_)
        @given(strategy)
        def collect(case: Any) -> None:
            out.append(case)

        collect()
        round_ += 1
    return out[:count]


# Raw bytes that are not (well-formed) HTTP: the server must answer 400 or close, never crash.
RAW_CASES: tuple[bytes, ...] = (
    b"GARBAGE\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS hello
    b"GET / HTTP/9.9\r\n\r\n",
    b"GET /readyz HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    b"POST /v1/requests HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked"
    b"\r\n\r\nzzzz\r\n",
    b"POST /v1/requests HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n",
    b"GET /readyz HTTP/1.1\r\nHost: x\r\nX-Bad\x00: y\r\n\r\n",
    b"GET /readyz HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 200_000 + b"\r\n\r\n",
    b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /readyz HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(5000)) + b"\r\n",
    b"\xff\xfe\xfd\r\n\r\n",
    b"GET /v1/requests/\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /v1/requests HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999999999999999\r\n\r\n{",
)


# --- sending, counting ----------------------------------------------------------------------------


@dataclass
class HttpTally:
    tried: int = 0
    by_class: Counter[str] = field(default_factory=Counter)  # 2xx, 4xx, 5xx, other, no_answer
    by_kind: dict[str, Counter[str]] = field(default_factory=dict)
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)  # samples of 5xx / other / no answer
    not_sent: int = 0  # drawn requests the HTTP client itself refused to send

    def merge(self, other: HttpTally) -> None:
        self.tried += other.tried
        self.by_class.update(other.by_class)
        for kind, counts in other.by_kind.items():
            self.by_kind.setdefault(kind, Counter()).update(counts)
        self.statuses.update(other.statuses)
        self.failures += other.failures[: max(0, 40 - len(self.failures))]
        self.not_sent += other.not_sent

    def add(self, kind: str, outcome: str, status: int, note: str) -> None:
        self.tried += 1
        self.by_class[outcome] += 1
        self.by_kind.setdefault(kind, Counter())[outcome] += 1
        if status:
            self.statuses[status] += 1
        if outcome not in ("2xx", "3xx", "4xx") and len(self.failures) < 40:
            self.failures.append(note)


def _classify(status: int) -> str:
    if 200 <= status < 300:
        return "2xx"
    if 400 <= status < 500:
        return "4xx"
    if status >= 500:
        return "5xx"
    if 300 <= status < 400:
        # FastAPI's redirect to the canonical path ("/v1/requests/" → "/v1/requests"), which
        # then answers 4xx itself: counted apart, not as a failure.
        return "3xx"
    return "other"


async def _chunks(body: bytes, size: int = 16_384) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


async def send_cases(
    services: ServiceSet, cases: Sequence[HttpCase], *, concurrency: int = 12
) -> HttpTally:
    tally = HttpTally()
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:

        async def one(case: HttpCase) -> None:
            headers = list(case.headers)
            if case.signed:
                signed = sign(case.body or b"")
                names = {k.lower() for k, _ in headers}
                headers = [(k, v.encode()) for k, v in signed.items() if k.lower() not in names]
                headers += list(case.headers)
            url = services.url(case.service) + case.path
            content: bytes | AsyncIterator[bytes] | None = case.body
            kind = case.kind
            if case.body and len(case.body) > 60_000 and len(case.body) % 2:
                content, kind = _chunks(case.body), f"{kind}_chunked"  # no Content-Length
            async with gate:
                try:
                    answer = await http.request(
                        case.method,
                        url,
                        headers=[(k.encode(), v) for k, v in headers],
                        content=content,
                    )
                except (httpx.LocalProtocolError, httpx.InvalidURL, UnicodeEncodeError):
                    tally.not_sent += 1
                    return
                except httpx.HTTPError as exc:
                    tally.add(
                        kind,
                        "no_answer",
                        0,
                        f"{case.method} {case.path[:80]}: {type(exc).__name__}",
                    )
                    return
            status = answer.status_code
            tally.add(
                kind,
                _classify(status),
                status,
                f"{status} {kind} {case.method} {case.path[:80]}: {answer.text[:200]}",
            )

        await asyncio.gather(*(one(c) for c in cases))
    return tally


async def send_raw(services: ServiceSet, tally: HttpTally) -> None:
    """Each raw case to each service on a fresh connection; the status line is read back."""
    for service in SERVICES:
        for raw in RAW_CASES:
            outcome, status, note = "no_answer", 0, f"raw {raw[:30]!r} → {service}: closed"
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", services.port(service))
                try:
                    writer.write(raw)
                    await writer.drain()
                    line = await asyncio.wait_for(reader.readline(), timeout=10)
                finally:
                    writer.close()
            except (OSError, TimeoutError):
                line = b""
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                status = int(parts[1])
                outcome = _classify(status)
                note = f"raw {raw[:30]!r} → {service}: {status}"
            tally.add("raw_protocol", outcome, status, note)


async def alive_and_ready(services: ServiceSet) -> dict[str, bool]:
    """Per service: the process still runs and /readyz answers 200."""
    out: dict[str, bool] = {}
    async with httpx.AsyncClient(timeout=10) as http:
        for service in SERVICES:
            proc = services.procs.get(service)
            running = proc is not None and proc.poll() is None
            ready = False
            if running:
                try:
                    ready = (await http.get(f"{services.url(service)}/readyz")).status_code == 200
                except httpx.HTTPError:
                    ready = False
            out[service] = running and ready
    return out


@dataclass
class HttpFlood:
    tally: HttpTally
    alive: dict[str, bool]
    seconds: float


async def http_flood(services: ServiceSet, count: int, *, seed: int, citizen: Person) -> HttpFlood:
    """At least ``count`` generated requests answered (plus the raw cases): a few draws the
    HTTP client itself refuses to send (an invalid URL, a header it will not encode) are
    replaced by more draws."""
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=services.url("intake"), timeout=30) as http:
        first = await http.post("/v1/requests", json=request_body(citizen))
        first.raise_for_status()
    known_id, known_token = first.json()["request_id"], first.json()["tracking_token"]
    cases = await asyncio.to_thread(
        generate, all_cases(request_body(citizen), known_id, known_token), count, seed=seed
    )
    tally = await send_cases(services, cases)
    round_ = 1
    while tally.tried < count:
        more = await asyncio.to_thread(
            generate,
            all_cases(request_body(citizen), known_id, known_token),
            2 * (count - tally.tried),
            seed=seed + 1000 * round_,
        )
        extra = await send_cases(services, more[: count - tally.tried])
        tally.merge(extra)
        round_ += 1
    await send_raw(services, tally)
    return HttpFlood(tally, await alive_and_ready(services), time.monotonic() - started)


# --- Kafka: malformed records on every input topic ------------------------------------------------

# Who consumes what (services/*/app.py): service and consumer-group name per input topic.
CONSUMERS: dict[Topic, tuple[tuple[ServiceName, str], ...]] = {
    Topic.PARTNER_INBOUND: (("intake", "intake"), ("notify", "notify-survey")),
    Topic.SUBMITTED: (("verify", "verify"), ("notify", "notify")),
    Topic.SUBMITTED_PRIORITY: (("verify", "verify-priority"), ("notify", "notify-priority")),
    Topic.VERIFIED: (("route", "route"), ("notify", "notify")),
    Topic.VERIFIED_PRIORITY: (("route", "route-priority"), ("notify", "notify-priority")),
    Topic.REVIEW: (("notify", "notify"),),
    Topic.REJECTED: (("notify", "notify"),),
    **dict.fromkeys(DISPATCH_TOPICS, (("notify", "notify"),)),
    Topic.STATUS: (("route", "route-status"),),
    Topic.LIFECYCLE: (("route", "route-lifecycle"), ("notify", "notify")),
}
MODELS: dict[Topic, type[BaseModel]] = {
    Topic.PARTNER_INBOUND: PartnerHelpRequest,
    Topic.SUBMITTED: SubmittedRequest,
    Topic.SUBMITTED_PRIORITY: SubmittedRequest,
    Topic.VERIFIED: VerifiedRequest,
    Topic.VERIFIED_PRIORITY: VerifiedRequest,
    Topic.REVIEW: ReviewRequest,
    Topic.REJECTED: RejectedRequest,
    **dict.fromkeys(DISPATCH_TOPICS, DispatchJob),
    Topic.STATUS: StatusEvent,
    Topic.LIFECYCLE: LifecycleEvent,
}

# Records a consumer skips on purpose, and the rule that says so.
IGNORED_RULES = {
    "notify_not_survey": "notify takes only survey answers (ce_type survey.answer) from "
    "help.partner.inbound — services/notify/handlers.py handle_partner_inbound",
    "intake_survey": "intake leaves survey answers on help.partner.inbound to notify — "
    "services/intake/handlers.py handle_partner_record",
    "route_lifecycle_others": "route acts only on reopened/closed lifecycle events from "
    "others — services/route/handlers.py handle_lifecycle",
    "notify_closed_reopened": "closed/reopened are recorded by notify's own survey, not "
    "announced — config/notify.toml [events] lifecycle",
}

Outcome = Literal["dlq"] | str


@dataclass(frozen=True)
class BadRecord:
    topic: Topic
    kind: str
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]
    lifecycle_status: str = ""


def expected(service: ServiceName, record: BadRecord) -> Outcome:
    """What ``service`` must do with ``record``: "dlq", or the name of the rule that skips it."""
    survey = any(k == CE_TYPE and v == SURVEY_TYPE.encode() for k, v in record.headers)
    if record.topic == Topic.PARTNER_INBOUND:
        if service == "intake":
            return "intake_survey" if survey else "dlq"
        return "dlq" if survey else "notify_not_survey"
    if record.topic == Topic.LIFECYCLE and record.kind == "unknown_id":
        closing = record.lifecycle_status in ("closed", "reopened")
        if service == "route":
            return "dlq" if closing else "route_lifecycle_others"
        return "notify_closed_reopened" if closing else "dlq"
    return "dlq"


def _now() -> str:
    return datetime.now(UTC).isoformat()


def template(topic: Topic, request_id: str) -> dict[str, Any]:
    """A schema-valid value for ``topic`` about an unknown request and without a contact,
    so that no consumer can act on it (mutated into the wrong-schema records)."""
    now, later = _now(), (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    contact = {"phone": "+8613900000000"}
    location = {"district": "jinshui"}
    if topic == Topic.PARTNER_INBOUND:
        return {
            "category": "food_supply",
            "description": "需要买菜",
            "contact": contact,
            "partner_id": "no-such-partner",
            "external_id": request_id,
        }
    if topic in (Topic.SUBMITTED, Topic.SUBMITTED_PRIORITY):
        return {
            "request_id": request_id,
            "submitted_at": now,
            "channel": "web",
            "tracking_token_hash": "0" * 64,
            "request": {"category": "food_supply", "description": "需要买菜", "contact": contact},
        }
    if topic in (Topic.VERIFIED, Topic.VERIFIED_PRIORITY):
        return {
            "request_id": request_id,
            "submitted_at": now,
            "verified_at": now,
            "channel": "web",
            "category": "food_supply",
            "description": "需要买菜",
            "contact": contact,
            "location": location,
            "priority": "P3",
        }
    if topic == Topic.REVIEW:
        return {
            "request_id": request_id,
            "submitted_at": now,
            "flagged_at": now,
            "category": "food_supply",
            "priority": "P3",
            "reasons": ["phone_invalid"],
        }
    if topic == Topic.REJECTED:
        return {
            "request_id": request_id,
            "submitted_at": now,
            "rejected_at": now,
            "reasons": ["abuse"],
        }
    if topic in DISPATCH_TOPICS:
        return {
            "leg_id": f"{request_id}:x",
            "request_id": request_id,
            "department": "police",
            "team_id": "t",
            "priority": "P3",
            "category": "transport",
            "description": "d",
            "contact": contact,
            "location": location,
            "submitted_at": now,
            "dispatched_at": now,
            "acknowledge_by": later,
            "resolve_by": later,
            "rule_version": "v",
            "rule_id": "r",
        }
    if topic == Topic.STATUS:
        return {
            "event_id": str(uuid.uuid4()),
            "request_id": request_id,
            "department": "medical",
            "status": "acknowledged",
            "occurred_at": now,
        }
    return {
        "event_id": str(uuid.uuid4()),
        "request_id": request_id,
        "status": "acknowledged",
        "at": now,
        "actor": "citizen",
    }


def _valid(topic: Topic, value: bytes) -> bool:
    try:
        MODELS[topic].model_validate_json(value)
    except (ValidationError, ValueError):
        return False
    return True


def _ce_headers(topic: Topic) -> list[tuple[str, bytes | None]]:
    return [
        ("ce_id", str(uuid.uuid4()).encode()),
        ("ce_type", b"city.help.chaos.v1"),
        ("ce_source", b"chaos/bad-input"),
        ("ce_specversion", b"1.0"),
        ("ce_time", _now().encode()),
        ("ce_subject", topic.value.encode()),
    ]


def _garbage_headers(rng: random.Random) -> list[tuple[str, bytes | None]]:
    choices: list[list[tuple[str, bytes | None]]] = [
        [("ce_id", b"\xff\xfe\xfd"), ("ce_time", b"yesterday"), ("ce_type", b"\x00\x01")],
        [("ce_time", b"9999-99-99T99:99:99"), ("ce_specversion", b"0.0"), ("ce_id", b"")],
        [("ce_type", "类型".encode("gbk")), ("ce_source", b"\x80" * 100)],
        [("ce_subject", b"x" * 20_000), ("ce_id", b"x" * 5_000)],
        [("content-type", b"application/x-protobuf"), ("ce_datacontenttype", b"\xc3\x28")],
        [("ce_id", b"1"), ("ce_id", b"2"), ("ce_type", b"")],
        [("correlation_id", b"\xff"), ("reply_to", b"\xfe\xff"), ("ce_time", b"\xff")],
        [("ce_id", None), ("ce_type", None), ("x-null", None)],  # null header values
    ]
    return rng.choice(choices)


def bad_records(topic: Topic, count: int, *, seed: int) -> list[BadRecord]:
    """``count`` malformed records for ``topic``, every kind in turn."""
    rng = random.Random(f"{seed}:{topic.value}")
    junk = generate(junk_json(), max(10, count // 4), seed=seed)
    kinds = [
        "not_json",
        "invalid_utf8",
        "wrong_schema",
        "wrong_schema",
        "empty",
        "tombstone",
        "garbage_headers",
        "unknown_id",
    ]
    if topic == Topic.PARTNER_INBOUND:
        kinds.append("survey_junk")
    lanes = (Topic.SUBMITTED, Topic.SUBMITTED_PRIORITY, Topic.VERIFIED, Topic.VERIFIED_PRIORITY)
    if topic in (*lanes, *DISPATCH_TOPICS):
        kinds.remove("unknown_id")  # self-contained events: an unknown id is a new request
    out: list[BadRecord] = []
    for i in range(count):
        # Oversized records are heavy (each > 256 KiB, copied to every dead-letter topic): one
        # in fifty, and at least one per topic.
        kind = (
            "oversized"
            if i % 50 == 49 or (i == count - 1 and count < 50)
            else kinds[i % len(kinds)]
        )
        request_id = str(uuid.uuid4())
        key: bytes | None = request_id.encode() if i % 5 else None
        headers = _ce_headers(topic)
        value: bytes | None
        status = ""
        if kind == "not_json":
            value = (
                rng.choice(
                    [
                        b"not json",
                        b"{'single': 'quotes'}",
                        b"<xml/>",
                        b'{"a": 1',
                        b"[1, 2",
                        b"NaN",
                        b"\x00\x01\x02",
                    ]
                )
                + str(i).encode()
            )
        elif kind == "invalid_utf8":
            value = (
                b'{"request_id": "' + bytes([0xFF, 0xC3, 0x28, rng.randrange(0x80, 0xFF)]) + b'"}'
            )
        elif kind in ("wrong_schema", "garbage_headers", "survey_junk"):
            value = _wrong_schema(topic, request_id, junk, rng)
            if kind == "garbage_headers":
                headers = _garbage_headers(rng) + ([] if i % 3 else headers)
            if kind == "survey_junk":
                headers = [(k, SURVEY_TYPE.encode() if k == CE_TYPE else v) for k, v in headers]
                value = rng.choice(
                    [
                        value,
                        b"not a survey",
                        encode({"request_id": request_id, "satisfied": "maybe"}, "ascii"),
                    ]
                )
        elif kind == "empty":
            value = b""
        elif kind == "tombstone":
            value, key = None, request_id.encode()  # a tombstone needs a key
        elif kind == "oversized":
            doc = template(topic, request_id)
            doc["description" if "description" in doc else "padding"] = "超" * 100_000
            value = encode(doc, "utf8")
        else:  # unknown_id
            doc = template(topic, request_id)
            if topic == Topic.LIFECYCLE:
                status = ("closed", "reopened", "acknowledged", "escalated")[i // len(kinds) % 4]
                doc["status"] = status
            if topic == Topic.PARTNER_INBOUND and i % 2:
                headers = [(k, SURVEY_TYPE.encode() if k == CE_TYPE else v) for k, v in headers]
                doc = SurveyAnswer(request_id=request_id, satisfied=True).model_dump(mode="json")
            value = encode(doc, "ascii")
        out.append(BadRecord(topic, kind, key, value, tuple(headers), status))
    return out


def _wrong_schema(topic: Topic, request_id: str, junk: list[Any], rng: random.Random) -> bytes:
    """JSON that is not a valid value for ``topic`` (checked against the schema)."""
    base = template(topic, request_id)
    for _ in range(20):
        doc: Any = base
        for _ in range(rng.randint(1, 3)):
            fields = [*base.keys(), "unexpected"]
            name = rng.choice(fields)
            if rng.random() < 0.3 and name in doc:
                doc = {k: v for k, v in doc.items() if k != name}
            else:
                doc = {**doc, name: rng.choice(junk)}
        if rng.random() < 0.1:
            doc = rng.choice(junk)
        value = encode(doc, rng.choice(["ascii", "utf8"]))
        if not _valid(topic, value):
            return value
    # Mutations that happened to stay valid: drop the required request id (or event id).
    return encode({k: v for k, v in base.items() if k not in ("request_id", "partner_id")}, "ascii")


@dataclass
class Produced:
    record: BadRecord
    partition: int
    offset: int
    digest: str


def _digest(value: bytes | None) -> str:
    return hashlib.sha256(value or b"").hexdigest()


async def produce_all(bootstrap: str, prefix: str, records: Sequence[BadRecord]) -> list[Produced]:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        max_request_size=2 * 1024 * 1024,
        linger_ms=20,
    )
    await producer.start()
    try:
        futures = []
        for r in records:
            futures.append(
                await producer.send(
                    prefix + r.topic.value, r.value, key=r.key, headers=list(r.headers)
                )
            )
        metas = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return [
        Produced(r, m.partition, m.offset, _digest(r.value))
        for r, m in zip(records, metas, strict=True)
    ]


async def wait_consumed(
    bootstrap: str, prefix: str, produced: Sequence[Produced], *, timeout: float
) -> dict[str, bool]:
    """Wait until every consumer group committed past every record produced to its topics."""
    targets: dict[str, dict[TopicPartition, int]] = {}
    for p in produced:
        for _, group in CONSUMERS[p.record.topic]:
            tp = TopicPartition(prefix + p.record.topic.value, p.partition)
            wanted = targets.setdefault(f"{prefix}cityhelp-{group}", {})
            wanted[tp] = max(wanted.get(tp, 0), p.offset + 1)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    done: dict[str, bool] = dict.fromkeys(targets, False)
    deadline = time.monotonic() + timeout
    try:
        while not all(done.values()) and time.monotonic() < deadline:
            for group, wanted in targets.items():
                if done[group]:
                    continue
                committed = await admin.list_consumer_group_offsets(group)
                done[group] = all(
                    tp in committed and committed[tp].offset >= off for tp, off in wanted.items()
                )
            if not all(done.values()):
                await asyncio.sleep(1.0)
    finally:
        await admin.close()
    return done


async def read_all(bootstrap: str, topic: str) -> list[Any]:
    """Every record on ``topic`` up to its current end."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    records: list[Any] = []
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = [
                TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()
            ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        remaining = {tp for tp in partitions if ends[tp] > 0}
        deadline = time.monotonic() + 120
        while remaining and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for tp, part in batch.items():
                records.extend(part)
                if part and part[-1].offset + 1 >= ends[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
    return records


@dataclass
class TopicTally:
    """One consumer on one topic: how its bad records were accounted for."""

    tried: int = 0
    dead_lettered: int = 0
    ignored: Counter[str] = field(default_factory=Counter)
    unaccounted: int = 0  # expected a dead letter, found none
    missing: Counter[str] = field(default_factory=Counter)  # unaccounted, by kind
    wrongly_dead: int = 0  # expected to be skipped by a rule, was dead-lettered
    altered: int = 0  # dead letter whose bytes differ from what was produced
    kinds: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)


@dataclass
class KafkaFlood:
    tallies: dict[tuple[ServiceName, Topic], TopicTally]
    consumed: dict[str, bool]
    stray_dead_letters: int  # dead letters that match no produced record
    alive: dict[str, bool]
    after_flood: dict[str, bool]  # stage → processed a valid record sent after the flood
    seconds: float

    @property
    def bad(self) -> int:
        return sum(t.unaccounted + t.wrongly_dead + t.altered for t in self.tallies.values())


async def account(
    bootstrap: str, prefix: str, produced: Sequence[Produced]
) -> tuple[dict[tuple[ServiceName, Topic], TopicTally], int]:
    by_origin = {(prefix + p.record.topic.value, p.partition, p.offset): p for p in produced}
    dead: dict[ServiceName, dict[tuple[str, int, int], tuple[str, str]]] = {}
    stray = 0
    for service in SERVICES:
        seen: dict[tuple[str, int, int], tuple[str, str]] = {}
        for rec in await read_all(bootstrap, prefix + dlq_topic(service).value):
            h = {k: (v or b"").decode("utf-8", "replace") for k, v in rec.headers}
            try:
                origin = (
                    h[DLQ_ORIGIN_TOPIC],
                    int(h[DLQ_ORIGIN_PARTITION]),
                    int(h[DLQ_ORIGIN_OFFSET]),
                )
            except (KeyError, ValueError):
                stray += 1
                continue
            if origin not in by_origin:
                stray += 1
                continue
            seen[origin] = (_digest(rec.value), h.get(DLQ_REASON, ""))
        dead[service] = seen
    tallies: dict[tuple[ServiceName, Topic], TopicTally] = {}
    for origin, p in by_origin.items():
        for service, _ in CONSUMERS[p.record.topic]:
            t = tallies.setdefault((service, p.record.topic), TopicTally())
            t.tried += 1
            t.kinds[p.record.kind] += 1
            want = expected(service, p.record)
            got = dead[service].get(origin)
            if want == "dlq" and got is not None:
                t.dead_lettered += 1
                t.reasons[got[1]] += 1
                if got[0] != p.digest:
                    t.altered += 1
            elif want == "dlq":
                t.unaccounted += 1
                t.missing[p.record.kind] += 1
            elif got is not None:
                t.wrongly_dead += 1
            else:
                t.ignored[want] += 1
    return tallies, stray


async def valid_after_flood(
    services: ServiceSet, bootstrap: str, citizen: Person, *, timeout: float = 90
) -> dict[str, bool]:
    """A valid partner record after the flood goes through intake, verify, route and notify,
    and a department's valid status report is applied by route."""
    prefix = services.prefix
    external_id = f"after-flood-{uuid.uuid4().hex[:8]}"
    value = {**request_body(citizen), "partner_id": PARTNER, "external_id": external_id}
    request_id = intake_domain.request_id_for(
        client=f"partner:{PARTNER}", idempotency_key=external_id
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    reached: dict[str, bool] = dict.fromkeys(SERVICES, False)
    try:
        await producer.send_and_wait(
            prefix + Topic.PARTNER_INBOUND.value,
            encode(value, "utf8"),
            key=external_id.encode(),
            headers=_ce_headers(Topic.PARTNER_INBOUND),
        )
        deadline = time.monotonic() + timeout
        job: dict[str, Any] | None = None
        async with httpx.AsyncClient(base_url=services.url("intake"), timeout=10) as http:
            while time.monotonic() < deadline:
                view = await http.get(f"/v1/requests/{request_id}")
                status = view.json().get("status") if view.status_code == 200 else None
                reached["intake"] = reached["intake"] or status is not None
                reached["verify"] = reached["verify"] or status in ("verified", "dispatched")
                if status == "dispatched":
                    break
                await asyncio.sleep(0.5)
            for topic in DISPATCH_TOPICS:
                for rec in await read_all(bootstrap, prefix + topic.value):
                    if rec.key == request_id.encode():
                        job = json.loads(rec.value)
            reached["route"] = job is not None
            if job is not None:
                report = {
                    "event_id": str(uuid.uuid4()),
                    "request_id": request_id,
                    "leg_id": job["leg_id"],
                    "department": job["department"],
                    "status": "acknowledged",
                    "occurred_at": _now(),
                    "actor": "chaos",
                }
                await producer.send_and_wait(
                    prefix + Topic.STATUS.value, encode(report, "ascii"), key=request_id.encode()
                )
            while time.monotonic() < deadline:
                events = {
                    json.loads(r.value)["event"]
                    for r in await read_all(bootstrap, prefix + Topic.NOTIFICATIONS.value)
                    if r.key == request_id.encode()
                }
                view = await http.get(f"/v1/requests/{request_id}")
                acknowledged = view.status_code == 200 and view.json()["status"] == "acknowledged"
                reached["notify"] = "dispatched" in events and (
                    "acknowledged" in events or job is None
                )
                reached["route"] = job is not None and acknowledged
                if reached["notify"] and reached["route"]:
                    break
                await asyncio.sleep(1.0)
    finally:
        await producer.stop()
    return reached


async def kafka_flood(
    services: ServiceSet, bootstrap: str, per_topic: int, *, seed: int, citizen: Person
) -> KafkaFlood:
    started = time.monotonic()
    records = [r for topic in CONSUMERS for r in bad_records(topic, per_topic, seed=seed)]
    produced = await produce_all(bootstrap, services.prefix, records)
    consumed = await wait_consumed(
        bootstrap, services.prefix, produced, timeout=120 + len(produced) / 20
    )
    tallies, stray = await account(bootstrap, services.prefix, produced)
    alive = await alive_and_ready(services)
    after = await valid_after_flood(services, bootstrap, citizen)
    return KafkaFlood(tallies, consumed, stray, alive, after, time.monotonic() - started)


# --- the chaos table ------------------------------------------------------------------------------


async def start_services(ctx: ChaosContext, **env: str) -> ServiceSet:
    """Four services of this part's own (isolated topics, groups and database; logs next to
    the runner's), with the keys and limits it needs."""
    services = ServiceSet(
        ctx.kafka_bootstrap, ctx.mongodb_uri, ctx.services.log_dir, extra_env=dict(env)
    )
    await ensure_topics(
        ServiceSettings(
            KAFKA_BOOTSTRAP=ctx.kafka_bootstrap,
            MONGODB_URI=ctx.mongodb_uri,
            TOPIC_PREFIX=services.prefix,
        )
    )
    await asyncio.to_thread(services.start)
    return services


# Rows of the chaos table: the generated kinds grouped by the API they hit.
HTTP_FAMILIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "intake POST /v1/requests",
        ("json_", "bytes_junk", "oversized", "valid_body", "content_type", "headers"),
    ),
    ("intake GET /v1/requests/{id}", ("path_query",)),
    ("intake POST /v1/partner/requests", ("partner_",)),
    ("intake Open311 /open311/v2/*", ("open311_",)),
    ("verify /v1/review*", ("verify_",)),
    ("notify POST /v1/requests/{id}/survey", ("survey",)),
    ("route GET /v1/command/summary", ("command_summary",)),
    ("unknown paths and methods, every service", ("stray",)),
    ("raw bytes that are not HTTP, every service", ("raw_protocol",)),
)


def _family(kind: str) -> str:
    for name, prefixes in HTTP_FAMILIES:
        if kind.startswith(prefixes):
            return name
    return "other"


def http_rows(flood: HttpFlood) -> list[Row]:
    t = flood.tally
    rows = []
    for name, _ in HTTP_FAMILIES:
        outcomes: Counter[str] = Counter()
        for kind, counts in t.by_kind.items():
            if _family(kind) == name:
                outcomes.update(counts)
        bad = outcomes["5xx"] + outcomes["other"] + outcomes["no_answer"]
        rows.append(
            Row(
                check=f"bad HTTP input: {name}",
                tried=sum(outcomes.values()),
                ok=sum(outcomes.values()) - bad,
                bad=bad,
                meaning="4xx (2xx when the draw was valid, 3xx to the canonical path); "
                "bad = 5xx or no answer",
                seconds=flood.seconds,
            )
        )
    crashed = sum(not ok for ok in flood.alive.values())
    rows.append(
        Row(
            check="services after the bad HTTP input",
            tried=len(flood.alive),
            ok=len(flood.alive) - crashed,
            bad=crashed,
            meaning="process alive and /readyz 200",
            seconds=flood.seconds,
            fields={
                "http_tried": t.tried,
                "http_4xx": t.by_class["4xx"],
                "http_2xx_valid": t.by_class["2xx"],
                "http_3xx_redirect": t.by_class["3xx"],
                "http_5xx": t.by_class["5xx"],
                "http_no_answer": t.by_class["no_answer"],
                "http_kinds": len(t.by_kind),
                "http_services_crashed": crashed,
            },
        )
    )
    return rows


def kafka_rows(flood: KafkaFlood) -> list[Row]:
    rows = []
    per_topic: dict[Topic, list[tuple[ServiceName, TopicTally]]] = {}
    for (service, topic), tally in flood.tallies.items():
        per_topic.setdefault(topic, []).append((service, tally))
    for topic, entries in per_topic.items():
        tried = sum(t.tried for _, t in entries)
        good = sum(t.dead_lettered + sum(t.ignored.values()) for _, t in entries)
        bad = sum(t.unaccounted + t.wrongly_dead + t.altered for _, t in entries)
        fields = {f"{s}_dlq": t.dead_lettered for s, t in entries}
        fields |= {f"{s}_ignored": sum(t.ignored.values()) for s, t in entries if t.ignored}
        rows.append(
            Row(
                check=f"malformed records on {topic.value}",
                tried=tried,
                ok=good,
                bad=bad,
                meaning="per consumer: dead-lettered with matching origin, or ignored by rule",
                seconds=flood.seconds,
                fields=fields,
            )
        )
    crashed = sum(not ok for ok in flood.alive.values())
    stuck = sum(not ok for ok in flood.after_flood.values())
    lagging = sum(not ok for ok in flood.consumed.values())
    rows.append(
        Row(
            check="stages after the malformed-record flood",
            tried=len(SERVICES),
            ok=len(SERVICES) - max(crashed, stuck),
            bad=crashed + stuck + lagging + flood.stray_dead_letters,
            meaning="alive, ready, consumed every record, and processed a valid record after",
            seconds=flood.seconds,
            fields={
                "kafka_stages_crashed": crashed,
                "kafka_stages_stuck": stuck,
                "kafka_groups_behind": lagging,
                "kafka_stray_dead_letters": flood.stray_dead_letters,
            },
        )
    )
    return rows


async def run(ctx: ChaosContext) -> list[Row]:
    """Bad HTTP input (10,000 at scale 1) and 1,000 malformed records per input topic."""
    citizens = people(4, seed=int(time.time()))
    services = await start_services(ctx, **service_env(dlq_limit=1_000_000))
    try:
        inputs, per_topic = ctx.count(10_000, 200), ctx.count(1_000, 20)
        ctx.say(f"bad input: {inputs} generated HTTP requests against the four services")
        http = await http_flood(services, inputs, seed=1, citizen=citizens[0])
        ctx.say(f"bad input: {per_topic} malformed records on each of {len(CONSUMERS)} topics")
        kafka = await kafka_flood(
            services, ctx.kafka_bootstrap, per_topic, seed=2, citizen=citizens[1]
        )
    finally:
        await asyncio.to_thread(services.stop)
    leaks = personal_data_in_logs(log_files(services), citizens)
    rows = http_rows(http) + kafka_rows(kafka)
    rows.append(
        Row(
            check="no personal data in the logs of the bad-input run",
            tried=len(citizens) * len(citizens[0].needles()),
            ok=len(citizens) * len(citizens[0].needles()) - len(leaks),
            bad=len(leaks),
            meaning="names, phone numbers (any shape), addresses, descriptions searched in logs",
        )
    )
    return rows


def summary(flood: HttpFlood | KafkaFlood) -> str:
    """A printable account, for test failures and the report."""
    if isinstance(flood, HttpFlood):
        t = flood.tally
        kinds = {k: dict(v) for k, v in sorted(t.by_kind.items())}
        return (
            f"{t.tried} tried, {dict(t.by_class)}, not sent {t.not_sent}, "
            f"statuses {dict(sorted(t.statuses.items()))}, alive {flood.alive}, "
            f"{flood.seconds:.0f}s\nkinds {kinds}\nfailures {t.failures}"
        )
    lines = [
        f"consumed {flood.consumed}, stray {flood.stray_dead_letters}, alive {flood.alive}, "
        f"after {flood.after_flood}, {flood.seconds:.0f}s"
    ]
    for (service, topic), tally in sorted(flood.tallies.items()):
        lines.append(
            f"{service:6} {topic.value:34} tried {tally.tried} dlq {tally.dead_lettered} "
            f"ignored {dict(tally.ignored)} unaccounted {dict(tally.missing)} wrongly_dead "
            f"{tally.wrongly_dead} altered {tally.altered} reasons {dict(tally.reasons)}"
        )
    return "\n".join(lines)
