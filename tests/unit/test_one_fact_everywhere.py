"""Facts two services act on are read by one rule: the phone number (shared.phones), triage
and the fast lane (shared.triage), the city (shared.jurisdiction). Each case is checked in
every service that acts on it, so a service with its own reading fails here."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from services.intake import domain as intake
from services.intake.settings import IntakeSettings
from services.notify import domain as notify
from services.notify.settings import NotifySettings
from services.verify import domain as verify
from services.verify.settings import VerifySettings
from shared.jurisdiction import load_jurisdiction
from shared.phones import PhoneCheck, normalise_phone
from shared.schemas import HelpRequest, SubmittedRequest
from shared.settings import CONFIG_DIR
from shared.text import fold
from shared.topics import Topic
from shared.triage import load_triage, temperatures

pytestmark = pytest.mark.unit

ZHENGZHOU = load_jurisdiction(CONFIG_DIR / "jurisdiction.toml")
NOVOSIBIRSK_FILE = Path(__file__).resolve().parents[1] / "fixtures/novosibirsk/jurisdiction.toml"
PHONE = "13800138000"
TRIAGE = load_triage(CONFIG_DIR / "triage.toml")
INTAKE = intake.load_rules(CONFIG_DIR / "intake.toml")
VERIFY = verify.load_config(CONFIG_DIR)
NOTIFY = notify.load_rules(CONFIG_DIR / "notify.toml")

# --- one phone number ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+7 916 123-45-67", PhoneCheck("+79161234567", "foreign_phone")),  # Russian mobile
        ("0079161234567", PhoneCheck("+79161234567", "foreign_phone")),
        ("+1 (650) 253-0000", PhoneCheck("+16502530000", "foreign_phone")),  # US mobile
        ("6789 1234", PhoneCheck("+8637167891234")),  # Zhengzhou landline, no area code
        ("0371-6789 1234", PhoneCheck("+8637167891234")),  # with the area code
        ("(0371) 67891234", PhoneCheck("+8637167891234")),
        ("+86 371 6789 1234", PhoneCheck("+8637167891234")),
        ("010-6552 9988", PhoneCheck("+861065529988")),  # another Chinese city's landline
        ("１３８ ００１３ ８０００", PhoneCheck("+8613800138000")),  # full-width digits
        ("＋８６ １３８－００１３－８０００", PhoneCheck("+8613800138000")),
        ("0086 138 0013 8000", PhoneCheck("+8613800138000")),
        ("not a number", PhoneCheck(None, "invalid_phone")),
        ("123", PhoneCheck(None, "invalid_phone")),
    ],
)
def test_one_normaliser_reads_every_shape(raw: str, expected: PhoneCheck) -> None:
    assert normalise_phone(raw, ZHENGZHOU) == expected


def submitted(phone: str, description: str = "需要胰岛素", **request: Any) -> SubmittedRequest:
    return SubmittedRequest.model_validate(
        {
            "request_id": "R-1",
            "submitted_at": datetime(2026, 1, 9, 6, 0, tzinfo=UTC),
            "channel": "web",
            "tracking_token_hash": "0" * 64,
            "request": {
                "category": "medical",
                "description": description,
                "contact": {"phone": phone},
                "location": {"district": "金水区", "lat": 34.8, "lon": 113.66},
                **request,
            },
        }
    )


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("+7 916 123-45-67", "+79161234567"),
        ("+1 650 253 0000", "+16502530000"),
        ("6789 1234", "+8637167891234"),
        ("0371 6789 1234", "+8637167891234"),
        ("１３８００１３８０００", "+8613800138000"),
    ],
)
def test_intake_verify_and_notify_agree_on_the_number(raw: str, e164: str) -> None:
    decision = verify.decide(submitted(raw), VERIFY)
    assert decision.phone == e164  # what verify carries in its events and keys history by
    receipt = notify.from_submitted(submitted(raw), NOTIFY, public_base_url="http://x")
    assert receipt.phone == e164  # where notify sends the receipt
    # intake's rate-limit key is that of the normalised number in any shape
    assert intake.phone_key(raw, INTAKE.jurisdiction) == intake.phone_key(e164, ZHENGZHOU)


def test_a_foreign_number_is_kept_and_reviewed_not_rewritten() -> None:
    decision = verify.decide(submitted("+79161234567"), VERIFY)
    assert decision.outcome == "needs_review"
    assert "foreign_phone" in decision.problems
    assert decision.phone == "+79161234567"


# --- one triage ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["39度5", "39.5℃", "39,5", "39.5 C", "３９．５度", "39.5°C", "39,5 градусов", "39.5度"]
)
def test_temperatures_in_the_shapes_people_write_them(text: str) -> None:
    assert temperatures(fold(f"体温 {text} 了")) == [39.5]


@pytest.mark.parametrize("text", ["13800138000", "金水路 39 号", "39 cats", "2026.01.09", "1,5 кг"])
def test_numbers_that_are_not_temperatures(text: str) -> None:
    assert not [t for t in temperatures(fold(text)) if t >= 38]


P1_APART = [
    "宝宝从昨天晚上开始一直发烧，家里没有退烧药",  # infant … fever, apart
    "家里有个三个月大的婴儿，体温39度5",  # infant … a temperature
    "婴儿现在39.5℃",
    "My baby is 4 months old and has had a high fever since noon",
    "our newborn: temperature 39.5 C, no medicine at home",
    "У нас младенец, со вчерашнего дня температура 39,5",
    "Грудной ребёнок, температура держится",
    "老人在家晕倒了",
    "妻子要生了，叫不到车",
    "他说不想活了",
    "My wife is giving birth at home",
    "my chest has been hurting badly since the morning",
    "Мама потеряла сознание",
]


@pytest.mark.parametrize("description", P1_APART)
def test_needs_written_apart_are_p1_in_verify_and_the_fast_lane_in_intake(
    description: str,
) -> None:
    request = HelpRequest.model_validate(
        {"category": "food_supply", "description": description, "contact": {"phone": PHONE}}
    )
    assert verify.triage(request, VERIFY.triage).priority == "P1"
    assert intake.lane_for(request, INTAKE) is Topic.SUBMITTED_PRIORITY


def test_an_infant_without_a_fever_and_a_fever_without_an_infant_are_not_p1() -> None:
    for description in ("宝宝的奶粉快没了", "发烧了，需要退烧药", "I have a fever of 38.5 C"):
        request = HelpRequest.model_validate(
            {"category": "medical", "description": description, "contact": {"phone": PHONE}}
        )
        assert verify.triage(request, VERIFY.triage).priority != "P1", description


def every_urgent_word() -> list[str]:
    return [
        pattern.pattern.removeprefix(r"(?<!\w)").replace("\\", "")
        for rule in TRIAGE.keywords
        if rule.priority in ("P1", "P2") and not rule.needs_group
        for pattern in rule.patterns
    ]


@pytest.mark.parametrize("word", every_urgent_word())
def test_every_urgent_word_of_triage_takes_the_fast_lane(word: str) -> None:
    """One configuration: a word verify triages as P1 or P2 never takes intake's slow lane."""
    request = HelpRequest.model_validate(
        {"category": "food_supply", "description": f"求助：{word}", "contact": {"phone": PHONE}}
    )
    assert verify.triage(request, VERIFY.triage).urgent
    assert intake.lane_for(request, INTAKE) is Topic.SUBMITTED_PRIORITY


# --- another city's file ---------------------------------------------------------------------


def test_another_citys_file_moves_every_service(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITYHELP_JURISDICTION_FILE", str(NOVOSIBIRSK_FILE))
    intake_settings, verify_settings = IntakeSettings(), VerifySettings()
    notify_settings = NotifySettings()
    # each service loads its files as its composition root does
    intake_rules = intake.load_rules(
        intake_settings.config_dir / intake_settings.rules_file,
        jurisdiction_path=intake_settings.config_dir / intake_settings.jurisdiction_file,
    )
    config = verify.load_config(
        verify_settings.config_dir, jurisdiction_file=verify_settings.jurisdiction_file
    )
    notify_rules = notify.load_rules(
        notify_settings.config_dir / notify_settings.rules_file,
        jurisdiction_path=notify_settings.config_dir / notify_settings.jurisdiction_file,
    )
    # phone region and area code
    local = "222 33 44"
    assert intake.phone_key(local, intake_rules.jurisdiction) == intake.phone_key(
        "+73832223344", intake_rules.jurisdiction
    )
    assert intake.mask_phone(local, intake_rules.jurisdiction) == "383****3344"
    novosibirsk = submitted(
        local, "нужен инсулин", location={"district": "Ленинский район"}, language="ru"
    )
    decision = verify.decide(novosibirsk, config)
    assert (decision.phone, decision.district, decision.outcome) == (
        "+73832223344",
        "leninsky",
        "verified",
    )
    chinese = verify.decide(
        submitted("+86 138 0013 8000", location={"district": "Ленинский район"}), config
    )
    assert "foreign_phone" in chinese.problems
    receipt = notify.from_submitted(novosibirsk, notify_rules, public_base_url="http://x")
    assert receipt.phone == "+73832223344"
    # districts: the Open311 form offers the city's, verify knows only the city's
    assert set(intake_rules.open311.districts) == {
        "tsentralny",
        "zheleznodorozhny",
        "leninsky",
        "sovetsky",
    }
    assert intake_rules.open311.jurisdiction_id == "novosibirsk"
    assert verify.match_district("金水区", config.jurisdiction) is None
    # the city's name and numbers in the messages, its time zone in the deadlines
    templates = notify.load_templates(notify_settings.config_dir / notify_settings.templates_dir)
    for language, name in (("ru", "Новосибирск"), ("en", "Novosibirsk"), ("zh", "新西伯利亚")):
        values = notify.message_values(
            receipt, language, notify_rules, survey_base_url="http://x", survey_secret="k"
        )
        text = notify.render(templates[f"{language}/received.txt"], values)
        assert name in text
        for other in ("Zhengzhou", "郑州", "Чжэнчжоу"):
            assert other not in text
    ru_values = notify.message_values(
        receipt, "ru", notify_rules, survey_base_url="x", survey_secret="k"
    )
    rejected = notify.render(templates["ru/rejected.txt"], {**ru_values, "reasons_text": "…"})
    assert "122" in rejected
    assert "12345" not in rejected
    at = datetime(2026, 1, 9, 6, 20, tzinfo=UTC)
    assert notify.local_time(at, notify_rules) == "2026-01-09 13:20"  # UTC+7, not +8
    assert notify.local_time(at, NOTIFY) == "2026-01-09 14:20"
