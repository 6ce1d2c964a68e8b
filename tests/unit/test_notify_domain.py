"""Notify's pure rules: template choice and wording, ids, back-off, rate limit, survey."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from services.notify import domain
from shared.phones import e164
from shared.schemas import LifecycleEvent, RejectedRequest, SubmittedRequest
from shared.settings import CONFIG_DIR

pytestmark = pytest.mark.unit

RULES = domain.load_rules(CONFIG_DIR / "notify.toml")
TEMPLATES = domain.load_templates(CONFIG_DIR / "templates")
EVENTS = (
    "received",
    "verified",
    "needs_review",
    "rejected",
    "duplicate",
    "dispatched",
    "acknowledged",
    "resolved",
    "escalated",
    "survey",
)
VALUES = {
    "request_id": "R-1",
    "status_link": "http://x/requests/R-1?lang=zh",
    "survey_link": "http://x/surveys/R-1?lang=zh&s=0123",
    "department_name": "医疗救助组",
    "acknowledge_by": "2026-01-09 14:20",
    "resolve_by": "2026-01-09 16:05",
    "reasons_text": "…",
    "duplicate_of": "R-0",
    "category": "medical",
    "hotline": "12345",
    "medical_emergency": "120",
}


def values_for(language: str) -> dict[str, str]:
    """The template values, with the city's name in the language (the jurisdiction file)."""
    return {**VALUES, "city": RULES.jurisdiction.city_name(language)}


CYRILLIC = re.compile(r"[А-Яа-яЁё]")
HAN = re.compile(r"[\u4e00-\u9fff]")


# --- template choice ---


def test_category_specific_template_wins() -> None:
    available = {"en/dispatched.medical.txt", "en/dispatched.txt", "zh/dispatched.txt"}
    assert domain.choose_template(available, "dispatched", "medical", "en") == (
        "en/dispatched.medical.txt"
    )


def test_event_generic_when_no_category_override() -> None:
    available = {"en/dispatched.medical.txt", "en/dispatched.txt"}
    assert domain.choose_template(available, "dispatched", "food_supply", "en") == (
        "en/dispatched.txt"
    )
    assert domain.choose_template(available, "dispatched", None, "en") == "en/dispatched.txt"


def test_falls_back_to_chinese_category_then_generic() -> None:
    available = {"zh/received.suggestion.txt", "zh/received.txt", "en/verified.txt"}
    assert domain.choose_template(available, "received", "suggestion", "ru") == (
        "zh/received.suggestion.txt"
    )
    assert domain.choose_template(available, "received", "medical", "ru") == "zh/received.txt"


def test_same_language_generic_beats_chinese_category_override() -> None:
    available = {"zh/received.suggestion.txt", "ru/received.txt"}
    assert domain.choose_template(available, "received", "suggestion", "ru") == "ru/received.txt"


def test_no_template_means_no_message() -> None:
    assert domain.choose_template({"zh/received.txt"}, "in_progress", "medical", "en") is None


def test_candidates_in_order_without_repeats() -> None:
    assert domain.template_candidates("resolved", "medical", "zh") == [
        "zh/resolved.medical.txt",
        "zh/resolved.txt",
    ]


# --- the shipped templates ---


@pytest.mark.parametrize("event", EVENTS)
@pytest.mark.parametrize("language", ["zh", "en", "ru"])
def test_every_event_has_its_own_wording_in_every_language(event: str, language: str) -> None:
    name = domain.choose_template(TEMPLATES, event, "transport", language)
    assert name == f"{language}/{event}.txt"
    text = domain.render(TEMPLATES[name], values_for(language))
    assert "R-1" in text
    assert RULES.jurisdiction.city_name(language) in text
    assert "{{" not in text
    assert "\n" not in text
    if language == "ru":
        assert CYRILLIC.search(text)
    elif language == "zh":
        assert HAN.search(text)
    else:
        assert not CYRILLIC.search(text)
        assert not HAN.search(text.replace(VALUES["department_name"], ""))


def test_russian_suggestion_receipt_uses_the_russian_generic_text() -> None:
    name = domain.choose_template(TEMPLATES, "received", "suggestion", "ru")
    assert name == "ru/received.txt"
    name_en = domain.choose_template(TEMPLATES, "received", "suggestion", "en")
    assert name_en == "en/received.suggestion.txt"


def test_receipt_carries_the_status_link_and_dispatch_the_deadlines() -> None:
    receipt = domain.render(TEMPLATES["en/received.txt"], values_for("en"))
    assert "http://x/requests/R-1?lang=zh" in receipt
    dispatched = domain.render(TEMPLATES["ru/dispatched.txt"], values_for("ru"))
    assert "2026-01-09 14:20" in dispatched
    assert "2026-01-09 16:05" in dispatched
    duplicate = domain.render(TEMPLATES["zh/duplicate.txt"], values_for("zh"))
    assert "R-0" in duplicate


def test_a_missing_value_is_an_error_not_a_gap() -> None:
    with pytest.raises(Exception, match="status_link"):
        domain.render(TEMPLATES["zh/received.txt"], {"request_id": "R-1", "city": "郑州"})


# --- events to notices ---


def test_duplicate_rejection_becomes_the_duplicate_message() -> None:
    now = datetime(2026, 1, 9, tzinfo=UTC)
    rejected = RejectedRequest(
        request_id="R-2", submitted_at=now, rejected_at=now, reasons=["duplicate"],
        duplicate_of="R-1", language="en",
    )  # fmt: skip
    notice = domain.from_rejected(rejected, RULES)
    assert notice.event == "duplicate"
    assert notice.values["duplicate_of"] == "R-1"
    plain = rejected.model_copy(
        update={"duplicate_of": None, "reasons": ["outside_jurisdiction", "x"]}
    )
    refused = domain.from_rejected(plain, RULES)
    assert refused.event == "rejected"
    assert refused.values["reasons_text"] == "the address is outside the city's service area"


def test_unknown_reason_codes_get_the_generic_text() -> None:
    assert domain.reasons_text(["weird"], "ru", RULES) == "данные неполные или не подтвердились"


def test_reason_with_detail_is_looked_up_by_its_code() -> None:
    text = domain.reasons_text(["incomplete:location", "incomplete:name", "flood"], "zh", RULES)
    assert text == "缺少必要信息；同一号码提交过多求助"


def test_lifecycle_language_only_when_stated() -> None:
    now = datetime(2026, 1, 9, tzinfo=UTC)
    stated = LifecycleEvent.model_validate(
        {"event_id": "e", "request_id": "R", "status": "resolved", "at": now, "actor": "x",
         "language": "ru"}
    )  # fmt: skip
    unstated = LifecycleEvent(event_id="e", request_id="R", status="resolved", at=now, actor="x")
    assert (notice := domain.from_lifecycle(stated, RULES)) is not None
    assert notice.language == "ru"
    assert (notice := domain.from_lifecycle(unstated, RULES)) is not None
    assert notice.language is None
    closed = unstated.model_copy(update={"status": "closed"})
    assert domain.from_lifecycle(closed, RULES) is None


def test_deadlines_in_the_city_local_time() -> None:
    at = datetime(2026, 1, 9, 6, 5, tzinfo=UTC)
    assert domain.local_time(at, RULES) == "2026-01-09 14:05"


# --- delivery ids, phones, back-off ---


def test_notification_ids_are_stable_and_distinct() -> None:
    first = domain.notification_id("R", "received", "sms")
    assert first == domain.notification_id("R", "received", "sms")
    others = {
        domain.notification_id("R", "received", "webhook"),
        domain.notification_id("R", "verified", "sms"),
        domain.notification_id("R2", "received", "sms"),
        domain.notification_id("R", "dispatched", "sms", "leg-1"),
        domain.notification_id("R", "dispatched", "sms", "leg-2"),
    }
    assert len(others) == 5
    assert first not in others


@pytest.mark.parametrize(
    "raw",
    ["138 0013 8000", "138-0013-8000", "+86 138 0013 8000", "0086 13800138000",
     "１３８００１３８０００", "+8613800138000"],
)  # fmt: skip
def test_phone_shapes_normalise_and_hash_alike(raw: str) -> None:
    phone = e164(raw, RULES.jurisdiction)
    assert phone == "+8613800138000"
    assert domain.phone_hash("k", phone) != domain.phone_hash("other", phone)
    assert "13800138000" not in domain.phone_hash("k", phone)


def test_the_receipt_goes_to_the_number_as_every_service_reads_it() -> None:
    def receipt_to(phone: str) -> str | None:
        submitted = SubmittedRequest.model_validate(
            {
                "request_id": "R-1",
                "submitted_at": "2026-01-09T06:00:00Z",
                "channel": "web",
                "tracking_token_hash": "0" * 64,
                "request": {
                    "category": "medical",
                    "description": "需要胰岛素",
                    "contact": {"phone": phone},
                },
            }
        )
        return domain.from_submitted(submitted, RULES, public_base_url="http://x").phone

    assert receipt_to("+79161234567") == "+79161234567"  # not +8679161234567
    assert receipt_to("6789 1234") == "+8637167891234"  # the city's area code completed
    assert receipt_to("0371-6555 1234") == "+8637165551234"
    assert receipt_to("+1 650 253 0000") == "+16502530000"
    assert receipt_to("１３８ ００１３ ８０００") == "+8613800138000"
    assert receipt_to("123") is None  # nobody to tell


def test_deadlines_are_shown_in_the_jurisdictions_time_zone() -> None:
    at = datetime(2026, 1, 9, 6, 20, tzinfo=UTC)
    assert RULES.jurisdiction.time_zone == "Asia/Shanghai"
    assert domain.local_time(at, RULES) == "2026-01-09 14:20"


def test_webhook_signature_is_hmac_sha256_of_the_body() -> None:
    body = b'{"a":1}'
    assert domain.sign("s", body) == hmac.new(b"s", body, hashlib.sha256).hexdigest()


# --- rate limit, with a clock the test moves ---


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def test_rate_limit_per_phone_and_window() -> None:
    limit = domain.RateLimit(max_messages=3, window_seconds=3600, exempt_events=frozenset())
    clock = FakeClock(datetime(2026, 1, 9, 14, 0, tzinfo=UTC))
    counters: Counter[str] = Counter()

    def send(phone_hash: str) -> bool:
        key = limit.window_key(phone_hash, clock())
        counters[key] += 1
        return limit.admits(counters[key])

    assert [send("a") for _ in range(4)] == [True, True, True, False]
    assert send("b"), "another citizen has a budget of their own"
    clock.now += timedelta(minutes=59)
    assert not send("a"), "still the same window"
    clock.now += timedelta(minutes=1)
    assert send("a"), "a new window starts afresh"


def test_configured_exemptions() -> None:
    limit = RULES.rate_limit
    assert limit.exempt("received")
    assert limit.exempt("resolved")
    assert not limit.exempt("dispatched")
    assert not limit.exempt("survey")


# --- survey ---


def test_survey_outcome() -> None:
    assert domain.survey_outcome(True) == ("closed", "survey_satisfied")
    assert domain.survey_outcome(False) == ("reopened", "survey_unsatisfied")
    assert domain.satisfaction_key("team-7", "medical") == "team-7|medical"
    assert domain.satisfaction_key(None, None) == "unknown|unknown"


def test_tracking_token_checked_against_the_stored_hash() -> None:
    stored = hashlib.sha256(b"tok").hexdigest()
    assert domain.token_matches("tok", stored)
    assert not domain.token_matches("other", stored)
    assert not domain.token_matches(None, stored)
    assert not domain.token_matches("tok", None)
