"""Generated HTTP requests for every endpoint of the four services, and raw bytes that are not
HTTP at all."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from hypothesis import strategies as st

from services.intake.open311 import _ATTRIBUTES as ATTRIBUTES
from services.intake.open311 import _SPEC_FIELDS as SPEC_FIELDS
from shared.topics import SERVICES
from tests.chaos.credentials import API_KEY, COMMAND_KEY, PARTNER, VERIFIER_KEY
from tests.chaos.http_strategies import (
    CONTENT_TYPES,
    HttpCase,
    Service,
    encode,
    extra_headers,
    header_values,
    json_bodies,
    junk_json,
    mutated,
    odd_text,
    queries,
    segment,
    with_query,
)


def intake_cases(base: dict[str, Any], known_id: str) -> st.SearchStrategy[HttpCase]:
    ctypes = st.sampled_from([*CONTENT_TYPES, None])
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
            "path_query", "intake", "GET", with_query(f"/v1/requests/{rid}", query), headers
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
    # The fields the spec defines and our attributes (as one value and as a list), then
    # names intake must refuse.
    known = sorted(SPEC_FIELDS) + [f"attribute[{a}]{s}" for a in ATTRIBUTES for s in ("", "[]")]
    fields = st.sampled_from([*known, "attribute[x]", "attribute[", ""])
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
        return HttpCase("open311_get", "intake", "GET", with_query(f"/open311/v2/{path}", query))

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
                "verify_list", "verify", "GET", with_query("/v1/review", query), headers
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
        path = with_query("/v1/command/summary", query)
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
