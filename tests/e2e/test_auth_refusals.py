"""Bad credentials through the running services, a few of each kind (``make chaos`` tries 200
of each): every one refused with 401/403, none accepted, no other answer."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import pytest

from services.intake import domain as intake_domain
from shared.settings import CONFIG_DIR
from tests.chaos import auth
from tests.chaos.credentials import service_env
from tests.chaos.personal_data import log_files, people, personal_data_in_logs
from tests.conftest import make_services
from tests.support.services import ServiceSet

pytestmark = pytest.mark.e2e

PER_KIND = 12
CITIZENS = people(6, seed=random.randrange(1 << 30))


@pytest.fixture(scope="module")
async def services(kafka_bootstrap: str, mongodb_uri: str) -> AsyncIterator[ServiceSet]:
    started = await make_services(kafka_bootstrap, mongodb_uri, **service_env())
    with started.running():
        yield started


async def test_every_bad_credential_is_refused(services: ServiceSet) -> None:
    result = await auth.attack(services, PER_KIND, citizens=CITIZENS)
    report = auth.summary(result)
    assert set(result.kinds) == {
        "partner HTTP unsigned",
        "partner HTTP wrongly signed",
        "partner HTTP stale timestamp",
        "partner HTTP replayed nonce",
        "partner HTTP unknown partner",
        "Open311 POST without api_key",
        "Open311 POST wrong api_key",
        "Open311 POST another role's key",
        "verifier without key",
        "verifier wrong key",
        "verifier another role's key",
        "command summary without key",
        "command summary wrong key",
        "command summary another role's key",
        "survey without token",
        "survey wrong token",
        "full status view wrong token",
    }, report
    for tally in result.kinds.values():
        assert tally.tried == PER_KIND, report
        assert tally.accepted == 0, report
        assert tally.refused == tally.tried, report
    rows = auth.rows(result)
    assert all(row.bad == 0 and row.ok == row.tried for row in rows), report


async def test_refused_credentials_leave_no_personal_data_in_the_logs(
    services: ServiceSet,
) -> None:
    await auth.attack(services, 2, citizens=CITIZENS)
    assert personal_data_in_logs(log_files(services), CITIZENS) == []


def test_credentials_in_any_characters_are_refused_not_a_server_error() -> None:
    """compare_digest refuses str with non-ASCII characters: tokens and signatures are
    compared as bytes, so a token or signature in any script is simply wrong."""
    assert not intake_domain.token_matches("secret", "request-1", "令牌ä\u202e")
    check = intake_domain.check_partner_signature(
        headers={
            "x-partner-id": "hotline-12345",
            "x-timestamp": "1700000000",
            "x-nonce": "n1",
            "x-signature": "签名ü",
        },
        body=b"{}",
        partners=intake_domain.load_partners(CONFIG_DIR / "partners.toml"),
        secrets={"hotline-12345": "s"},
        now=1700000000.0,
        max_skew_seconds=300,
    )
    assert check.reason == "bad_signature"
