"""Keys kept as digests: a presented key finds its name, and nothing else opens."""

from __future__ import annotations

import pytest

from shared.keys import KeyDigests, sha256_hex

pytestmark = pytest.mark.unit


def test_a_key_in_clear_finds_its_name_and_an_empty_key_opens_nothing() -> None:
    keys = KeyDigests.of_keys({"ana": "key-a", "bo": "key-b", "nobody": ""})
    assert keys.find("key-a") == "ana"
    assert keys.find("key-b") == "bo"
    assert len(keys) == 2
    assert keys.find("") is None
    assert keys.find(None) is None
    assert keys.find("key-") is None


def test_a_stored_digest_is_not_a_key() -> None:
    keys = KeyDigests({"desk-1": sha256_hex("desk-key")})
    assert keys.find("desk-key") == "desk-1"
    assert keys.find(sha256_hex("desk-key")) is None


def test_a_key_with_characters_outside_ascii_is_refused_not_an_error() -> None:
    keys = KeyDigests.of_keys({"ana": "key-a"})
    assert keys.find("令牌ä\u202e") is None
