"""Intake's pure rules: lane choice, partner signatures, api keys, phone keys, views, config."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.intake import domain
from services.intake.settings import IntakeSettings
from shared.keys import KeyDigests
from shared.schemas import HelpRequest
from shared.settings import CONFIG_DIR
from shared.topics import Topic
from tests.support.records import stored_request

pytestmark = pytest.mark.unit

RULES = domain.load_rules(CONFIG_DIR / "intake.toml")
PARTNERS = domain.load_partners(CONFIG_DIR / "partners.toml")


def request(description: str, groups: list[str] | None = None) -> HelpRequest:
    return HelpRequest.model_validate(
        {
            "category": "food_supply",
            "description": description,
            "contact": {"phone": "13800138000"},
            "special_groups": groups or [],
        }
    )


# --- priority lane -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "description",
    [
        "妻子临产，需要车去医院",
        "My wife is in LABOR and we need help",
        "Нужна помощь, у жены начались роды",
        "父亲需要透析，出不了小区",
        "Mother needs dialysis tomorrow",
        "Папе нужен диализ",
        "老人胸痛",
        "severe chest pain since morning",
        "婴儿发烧39度",
        "Высокая температура у ребенка",
        "家里胰岛素用完了",
        "Out of insulin",
        "Закончился инсулин",
        "老人昏迷",
        "伤口出血不止",
    ],
)
def test_urgent_words_take_the_priority_lane(description: str) -> None:
    assert domain.lane_for(request(description), RULES) is Topic.SUBMITTED_PRIORITY


@pytest.mark.parametrize(
    "group", ["pregnant", "elderly", "child", "disabled", "chronic_illness", "living_alone"]
)
def test_every_green_channel_group_takes_the_priority_lane(group: str) -> None:
    assert domain.lane_for(request("需要买菜", [group]), RULES) is Topic.SUBMITTED_PRIORITY


def test_ordinary_request_takes_the_ordinary_lane() -> None:
    assert domain.lane_for(request("家里没有蔬菜了，需要买菜"), RULES) is Topic.SUBMITTED


def test_lane_follows_the_triage_file_not_the_code(tmp_path: Path) -> None:
    triage = tmp_path / "triage.toml"
    triage.write_text(
        """
[categories]
medical = "P3"
food_supply = "P3"
transport = "P3"
health_code = "P3"
education = "P3"
epidemic_policy = "P4"
suggestion = "P4"
[[keywords]]
id = "vegetables"
priority = "P2"
words = ["蔬菜"]
""",
        encoding="utf-8",
    )
    rules = domain.load_rules(CONFIG_DIR / "intake.toml", triage_path=triage)
    assert domain.lane_for(request("家里没有蔬菜了"), rules) is Topic.SUBMITTED_PRIORITY
    assert domain.lane_for(request("妻子临产", ["pregnant"]), rules) is Topic.SUBMITTED


# --- partner signatures ------------------------------------------------------------------

SECRETS = {"hotline-12345": "s3cret-for-tests"}
NOW = 1_700_000_000.0
BODY = b'{"category": "medical"}'


def signed_headers(**override: str | None) -> dict[str, str | None]:
    ts, nonce = str(int(NOW)), "n-1"
    headers: dict[str, str | None] = {
        "x-partner-id": "hotline-12345",
        "x-timestamp": ts,
        "x-nonce": nonce,
        "x-signature": domain.partner_signature(SECRETS["hotline-12345"], ts, nonce, BODY),
    }
    headers.update(override)
    return headers


def check(headers: dict[str, str | None], body: bytes = BODY, now: float = NOW) -> str | None:
    return domain.check_partner_signature(
        headers=headers,
        body=body,
        partners=PARTNERS,
        secrets=SECRETS,
        now=now,
        max_skew_seconds=300,
    ).reason


def test_signature_is_hmac_sha256_of_timestamp_nonce_and_body() -> None:
    # Computed independently: printf '1700000000\nn-1\n{"a":1}' | openssl dgst -sha256 -hmac k
    assert (
        domain.partner_signature("k", "1700000000", "n-1", b'{"a":1}')
        == "fad18cbed90720936152eb72177e229603d36a7fd72c04161501ad04dd55f49a"
    )


def test_valid_signature_passes() -> None:
    assert check(signed_headers()) is None
    upper = signed_headers()
    upper["x-signature"] = str(upper["x-signature"]).upper()
    assert check(upper) is None


@pytest.mark.parametrize("header", ["x-partner-id", "x-timestamp", "x-nonce", "x-signature"])
def test_missing_header_is_refused(header: str) -> None:
    assert check(signed_headers(**{header: None})) == "missing_headers"


def test_tampered_body_is_refused() -> None:
    assert check(signed_headers(), body=BODY + b" ") == "bad_signature"


def test_signature_with_another_secret_is_refused() -> None:
    ts = str(int(NOW))
    forged = domain.partner_signature("guessed", ts, "n-1", BODY)
    assert check(signed_headers(**{"x-signature": forged})) == "bad_signature"


def test_stale_and_future_timestamps_are_refused() -> None:
    assert check(signed_headers(), now=NOW + 301) == "stale_timestamp"
    assert check(signed_headers(), now=NOW - 301) == "stale_timestamp"
    assert check(signed_headers(), now=NOW + 299) is None


def test_non_numeric_timestamp_is_refused() -> None:
    assert check(signed_headers(**{"x-timestamp": "yesterday"})) == "bad_timestamp"
    assert check(signed_headers(**{"x-timestamp": "nan"})) == "bad_timestamp"


def test_unknown_partner_or_partner_without_secret_is_refused() -> None:
    assert check(signed_headers(**{"x-partner-id": "someone"})) == "unknown_partner"
    # grid-jinshui is configured but has no secret in SECRETS
    assert check(signed_headers(**{"x-partner-id": "grid-jinshui"})) == "unknown_partner"


def test_partner_request_id_is_stable_per_partner_and_external_id() -> None:
    first = domain.partner_request_id("hotline-12345", "A-1")
    assert first == domain.partner_request_id("hotline-12345", "A-1")
    assert first == domain.request_id_for(client="partner:hotline-12345", idempotency_key="A-1")
    assert first != domain.partner_request_id("hotline-12345", "A-2")
    assert first != domain.partner_request_id("hospital-zzu1", "A-1")


# --- api keys and phone keys ---------------------------------------------------------------


def test_an_api_key_matches_only_a_known_key_and_is_known_by_its_digest() -> None:
    known = KeyDigests.named_by_digest(["dev-open311-key", "other"])
    assert known.find("dev-open311-key") == domain.digest("dev-open311-key")
    assert known.find("dev-open311-ke") is None
    assert known.find("") is None
    assert known.find(None) is None
    assert KeyDigests.named_by_digest([]).find("dev-open311-key") is None


CITY = RULES.jurisdiction


def test_phone_key_is_one_per_number_whatever_its_shape_and_hides_it() -> None:
    shapes = ["138 0013 8000", "138-0013-8000", "+86 138 0013 8000", "１３８００１３８０００"]
    keys = {domain.phone_key(p, CITY) for p in shapes}
    assert len(keys) == 1
    key = keys.pop()
    assert "13800138000" not in key
    assert domain.phone_key("139 0013 8000", CITY) != key


def test_phone_key_keeps_countries_and_completes_local_landlines() -> None:
    # A Russian mobile is not the Chinese number with the same digits.
    assert domain.phone_key("+7 916 123-45-67", CITY) != domain.phone_key("79161234567", CITY)
    assert domain.phone_key("+7 916 123-45-67", CITY) == domain.phone_key("0079161234567", CITY)
    # A Zhengzhou landline with or without its area code is one number.
    assert domain.phone_key("6789 1234", CITY) == domain.phone_key("0371-6789 1234", CITY)


def test_masked_phone_shows_the_national_number_or_a_foreign_country() -> None:
    assert domain.mask_phone("+86 138 0013 8000", CITY) == "138****8000"
    assert domain.mask_phone("6789 1234", CITY) == "371****1234"
    assert domain.mask_phone("+7 916 123 45 67", CITY) == "791****4567"


def test_settings_take_api_keys_as_a_plain_value_a_list_or_json() -> None:
    plain = IntakeSettings(open311_api_keys="dev-open311-key")
    assert [k.get_secret_value() for k in plain.open311_api_keys] == ["dev-open311-key"]
    many = IntakeSettings(open311_api_keys="a, b")
    assert [k.get_secret_value() for k in many.open311_api_keys] == ["a", "b"]
    assert "dev-open311-key" not in repr(plain)


def test_settings_read_api_keys_and_partner_secrets_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("INTAKE_OPEN311_API_KEYS", '["k1", "k2"]')
    monkeypatch.setenv("INTAKE_PARTNER_SECRETS", '{"hotline-12345": "abc"}')
    settings = IntakeSettings()
    assert [k.get_secret_value() for k in settings.open311_api_keys] == ["k1", "k2"]
    assert settings.partner_secrets["hotline-12345"].get_secret_value() == "abc"
    assert "abc" not in repr(settings)


# --- views ---------------------------------------------------------------------------------

DOC = stored_request()


def test_public_view_masks_personal_data() -> None:
    view = domain.public_view(DOC, CITY)
    text = repr(view)
    for secret in ("需要胰岛素", "王女士", "13800138000", "金水路"):
        assert secret not in text
    assert view["contact"] == {"name": "王**", "phone": "138****8000"}
    assert view["district"] == "jinshui"  # verification's code, not the citizen's "金水"
    assert [t["status"] for t in view["timeline"]] == ["submitted", "verified", "dispatched"]
    assert view["timeline"][1] == {
        "status": "verified",
        "at": "t2",
        "actor": "verify",
        "reason": "ok",
    }


def test_public_view_shows_no_district_before_verification_placed_one() -> None:
    unverified = {k: v for k, v in DOC.items() if k != "district"}
    assert domain.public_view(unverified, CITY)["district"] is None


def test_full_view_has_status_priority_departments_and_timeline() -> None:
    view = domain.full_view(DOC, CITY)
    for key in ("request_id", "status", "priority", "category", "departments", "duplicate_of"):
        assert key in view
    assert view["contact"]["phone"] == "+8613800138000"
    assert view["timeline"][1]["actor"] == "verify"


def test_configured_open311_services_are_exactly_our_categories() -> None:
    from shared.schemas import CATEGORIES

    assert set(RULES.open311.services) == set(CATEGORIES)
    assert RULES.max_clock_skew_seconds == 300
