"""Hypothesis strategies for bad HTTP input: odd text, junk JSON, mutated bodies, encodings,
content types, header values and query strings."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from shared.topics import ServiceName

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


CONTENT_TYPES = [
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


def with_query(path: str, query: str) -> str:
    return f"{path}?{query}" if query else path


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
