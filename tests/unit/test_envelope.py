from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime

import pytest

from shared.envelope import _NAMESPACE, Envelope, derive_id, event_type

pytestmark = pytest.mark.unit


def test_headers_round_trip() -> None:
    env = Envelope(
        id="e1",
        type=event_type("request.submitted"),
        source="cityhelp/intake",
        subject="r1",
        time=datetime(2026, 1, 9, 14, 5, tzinfo=UTC),
        trace_id="t0",
        causation_id="c0",
    )
    headers = env.headers()
    assert headers["ce_specversion"] == "1.0"
    assert headers["ce_type"] == "city.help.request.submitted.v1"
    assert Envelope.from_headers(headers) == env


def test_missing_attributes_give_none() -> None:
    assert Envelope.from_headers({"ce_id": "x"}) is None


def test_derived_ids_are_stable_and_distinct() -> None:
    assert derive_id("verify", "r1") == derive_id("verify", "r1")
    assert derive_id("verify", "r1") != derive_id("route", "r1")
    assert derive_id("a", "bc") != derive_id("ab", "c")


def test_derived_ids_are_the_version_5_uuids_of_their_parts() -> None:
    # Ids already stored (effect keys, event ids) must keep matching after any change in how
    # they are computed, so every id is checked against the standard library's uuid5.
    rng = random.Random(7)
    alphabet = "abcdef0123456789-:\u5e2e\u52a9\u0416 \x1f"
    for _ in range(2000):
        parts = [
            "".join(rng.choices(alphabet, k=rng.randint(0, 40))) for _ in range(rng.randint(1, 4))
        ]
        expected = str(uuid.uuid5(_NAMESPACE, "\x1f".join(parts)))
        assert derive_id(*parts) == expected
        assert uuid.UUID(derive_id(*parts)).version == 5
