"""Notify's rules for the loop's ends: the survey's timers, the needs_info message, the call
rule's rejection reasons. Pure functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.notify import domain
from shared.schemas import LifecycleEvent
from shared.settings import CONFIG_DIR

pytestmark = pytest.mark.unit

RULES = domain.load_rules(CONFIG_DIR / "notify.toml")
TEMPLATES = domain.load_templates(CONFIG_DIR / "templates")
T0 = datetime(2026, 1, 9, 6, 0, tzinfo=UTC)


def test_a_survey_is_reminded_first_then_closed() -> None:
    timers = domain.SurveyTimers(timedelta(hours=24), timedelta(hours=72))
    assert timers.first_step(T0) == ("remind", T0 + timedelta(hours=24))
    no_reminder = domain.SurveyTimers(timedelta(hours=72), timedelta(hours=72))
    assert no_reminder.first_step(T0) == ("close", T0 + timedelta(hours=72))


def asking(event_id: str, language: str) -> LifecycleEvent:
    return LifecycleEvent.model_validate(
        {
            "event_id": event_id,
            "request_id": "R-1",
            "status": "needs_info",
            "at": T0,
            "actor": "route",
            "reason": "needs_info",
            "department": "medical",
            "category": "medical",
            "language": language,
            "contact": {"phone": "+8613900000001"},
            "note": "Which insulin?",
        }
    )


@pytest.mark.parametrize(
    ("language", "words"),
    [("zh", "需要补充信息"), ("en", "needs more information"), ("ru", "дополнительные сведения")],
)
def test_needs_info_tells_the_citizen_what_is_needed_with_the_link(
    language: str, words: str
) -> None:
    notice = domain.from_lifecycle(asking("e1", language), RULES)
    assert notice is not None
    link = domain.info_link("http://route", "R-1")
    values = domain.message_values(
        notice, language, RULES, survey_base_url="http://notify", survey_secret="s"
    )
    name = domain.choose_template(TEMPLATES, notice.event, notice.category, language)
    assert name == f"{language}/needs_info.txt"
    text = domain.render(TEMPLATES[name], {**values, "info_link": link})
    assert words in text
    assert "Which insulin?" in text
    assert "http://route/v1/requests/R-1/info" in text


def test_every_question_is_a_message_of_its_own() -> None:
    first = domain.from_lifecycle(asking("e1", "en"), RULES)
    second = domain.from_lifecycle(asking("e2", "en"), RULES)
    assert first is not None
    assert second is not None
    ids = {domain.notification_id("R-1", n.event, "sms", n.leg) for n in (first, second)}
    assert len(ids) == 2


@pytest.mark.parametrize("language", ["zh", "en", "ru"])
def test_the_call_rule_reasons_have_words_and_the_reminder_a_template(language: str) -> None:
    for code in ("unreachable", "wrong_number"):
        assert domain.reasons_text([code], language, RULES) != domain.reasons_text(
            ["no-such-code"], language, RULES
        )
    assert f"{language}/survey_reminder.txt" in TEMPLATES
