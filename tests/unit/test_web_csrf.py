from __future__ import annotations

import pytest

from shared.web import csrf

pytestmark = pytest.mark.unit
SECRET = "unit-test-page-secret"
NOW = 1_800_000_000.0


def test_a_fresh_token_passes_when_field_equals_cookie() -> None:
    token = csrf.issue(SECRET, now=NOW)
    assert csrf.check(SECRET, cookie=token, submitted=token, now=NOW + 60)


def test_tokens_differ_each_time() -> None:
    assert csrf.issue(SECRET, now=NOW) != csrf.issue(SECRET, now=NOW)


@pytest.mark.parametrize("submitted", [None, "", "other"])
def test_a_field_unlike_the_cookie_fails(submitted: str | None) -> None:
    token = csrf.issue(SECRET, now=NOW)
    assert not csrf.check(SECRET, cookie=token, submitted=submitted, now=NOW)


def test_no_cookie_fails() -> None:
    token = csrf.issue(SECRET, now=NOW)
    assert not csrf.check(SECRET, cookie=None, submitted=token, now=NOW)


def test_another_key_or_a_forged_signature_fails() -> None:
    token = csrf.issue("another-secret", now=NOW)
    assert not csrf.check(SECRET, cookie=token, submitted=token, now=NOW)
    nonce, issued, _sig = csrf.issue(SECRET, now=NOW).split(".")
    forged = f"{nonce}.{issued}.{'0' * 64}"
    assert not csrf.check(SECRET, cookie=forged, submitted=forged, now=NOW)


def test_a_token_bound_to_one_session_fails_in_another() -> None:
    token = csrf.issue(SECRET, binding="session-a", now=NOW)
    assert csrf.check(SECRET, cookie=token, submitted=token, binding="session-a", now=NOW)
    assert not csrf.check(SECRET, cookie=token, submitted=token, binding="session-b", now=NOW)
    assert not csrf.check(SECRET, cookie=token, submitted=token, now=NOW)


def test_an_old_token_fails() -> None:
    token = csrf.issue(SECRET, now=NOW)
    late = NOW + csrf.MAX_AGE_SECONDS + 1
    assert not csrf.check(SECRET, cookie=token, submitted=token, now=late)


@pytest.mark.parametrize("junk", ["a.b", "a.b.c.d", "a.notanumber.c", "x" * 300])
def test_malformed_tokens_fail(junk: str) -> None:
    assert not csrf.signed(SECRET, junk, now=NOW)
