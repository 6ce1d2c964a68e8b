"""Safe defaults: a service refuses to start on a secret published in the repository unless the
machine says it is a development one (CITYHELP_DEVELOPMENT=1), and names what to set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import SecretStr

from services.intake.settings import IntakeSettings
from services.notify.settings import NotifySettings
from services.route.settings import RouteSettings
from services.verify.settings import VerifySettings
from shared.settings import DEVELOPMENT_FLAG, DEVELOPMENT_VALUE, ServiceSettings

pytestmark = pytest.mark.unit

CLASSES: tuple[type[ServiceSettings], ...] = (
    ServiceSettings,
    IntakeSettings,
    VerifySettings,
    RouteSettings,
    NotifySettings,
)
SECRET_WORDS = ("secret", "password", "token", "key")
PAGE_SECRETS = {s: f"{s.upper()}_PAGE_SECRET" for s in ("intake", "verify", "route", "notify")}
REAL_SECRETS = {
    "INTAKE_TRACKING_SECRET": "9f2c7e1a-from-the-secret-store",
    "NOTIFY_WEBHOOK_SECRET": "4b8d-from-the-secret-store",
    "NOTIFY_PHONE_HASH_KEY": "77e0-from-the-secret-store",
    "NOTIFY_SURVEY_LINK_SECRET": "c3a1-from-the-secret-store",
    **{name: f"{name.lower()}-from-the-secret-store" for name in PAGE_SECRETS.values()},
}


@pytest.fixture(autouse=True)
def production(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever the shell running the tests says: no development flag, no secrets set."""
    monkeypatch.delenv(DEVELOPMENT_FLAG, raising=False)
    for name in (*PAGE_SECRETS.values(), *REAL_SECRETS):
        monkeypatch.delenv(name, raising=False)


def test_intake_on_its_published_tracking_secret_is_refused_and_says_what_to_set() -> None:
    settings = IntakeSettings()
    assert settings.development is False
    assert settings.development_defaults() == ["INTAKE_PAGE_SECRET", "INTAKE_TRACKING_SECRET"]
    refusal = settings.refusal()
    assert refusal is not None
    assert "INTAKE_TRACKING_SECRET" in refusal
    assert f"{DEVELOPMENT_FLAG}=1" in refusal
    assert "deploy/env.sample" in refusal


def test_notify_names_both_of_its_published_secrets() -> None:
    settings = NotifySettings()
    assert settings.development_defaults() == [
        "NOTIFY_PAGE_SECRET",
        "NOTIFY_PHONE_HASH_KEY",
        "NOTIFY_SURVEY_LINK_SECRET",
        "NOTIFY_WEBHOOK_SECRET",
    ]
    some = NotifySettings(
        webhook_secret="a-long-random-value",
        page_secret="another-one",
        survey_link_secret="a-third-one",
    )
    assert some.development_defaults() == ["NOTIFY_PHONE_HASH_KEY"]


def test_every_service_signs_its_pages_with_a_secret_of_its_own() -> None:
    for cls in (IntakeSettings, VerifySettings, RouteSettings, NotifySettings):
        prefix = str(cls.model_config.get("env_prefix", "")).rstrip("_").lower()
        assert PAGE_SECRETS[prefix] in cls().development_defaults()


def test_the_development_flag_allows_the_published_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(DEVELOPMENT_FLAG, "1")
    for cls in (IntakeSettings, NotifySettings):
        settings = cls()
        assert settings.development is True
        assert settings.development_defaults() != []  # still published, but allowed here
        assert settings.refusal() is None


@pytest.mark.parametrize("flag", ["", "0", "false"])
def test_an_empty_or_false_flag_is_production(monkeypatch: pytest.MonkeyPatch, flag: str) -> None:
    monkeypatch.setenv(DEVELOPMENT_FLAG, flag)
    assert IntakeSettings().development is False
    assert IntakeSettings().refusal() is not None


def test_real_secrets_start_without_the_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in REAL_SECRETS.items():
        monkeypatch.setenv(name, value)
    assert IntakeSettings().refusal() is None
    assert NotifySettings().refusal() is None
    assert VerifySettings().refusal() is None
    assert RouteSettings().refusal() is None


def test_an_emptied_secret_is_no_better_than_the_published_one() -> None:
    emptied = IntakeSettings(tracking_secret="  ", page_secret="from-the-secret-store")
    assert emptied.development_defaults() == ["INTAKE_TRACKING_SECRET"]
    # An empty value is refused only where the default was a published one: no SASL password
    # is a plain local broker, not a secret left behind.
    plain = ServiceSettings(KAFKA_SASL_PASSWORD="", page_secret="from-the-secret-store")
    assert plain.refusal() is None


def test_a_published_value_is_refused_wherever_it_is_configured() -> None:
    copied = IntakeSettings(
        tracking_secret="9f2c7e1a-from-the-secret-store",
        page_secret="from-the-secret-store",
        partner_secrets={"hotline-12345": SecretStr(f"{DEVELOPMENT_VALUE}partner")},
        open311_api_keys=json.dumps([f"{DEVELOPMENT_VALUE}open311"]),
    )
    assert copied.development_defaults() == ["INTAKE_OPEN311_API_KEYS", "INTAKE_PARTNER_SECRETS"]
    verifiers = VerifySettings(
        reviewer_keys={"alice": f"{DEVELOPMENT_VALUE}verifier"}, page_secret="from-the-store"
    )
    assert verifiers.development_defaults() == ["VERIFY_REVIEWER_KEYS"]


def test_every_secret_with_a_default_has_a_published_development_one() -> None:
    """A secret may default to nothing or to a value the check recognises; a new secret with
    some other hard-coded default would start in production unnoticed."""
    for cls in CLASSES:
        for name, info in cls.model_fields.items():
            if not any(word in name for word in SECRET_WORDS):
                continue
            default = info.get_default(call_default_factory=True)
            if isinstance(default, SecretStr):
                default = default.get_secret_value()
            if default:
                assert isinstance(default, str), (cls.__name__, name)
                assert default.startswith(DEVELOPMENT_VALUE), (cls.__name__, name, default)


def test_the_development_commands_set_the_flag() -> None:
    """make run, make test, make chaos and make bench run on the published keys: each says so."""
    local = Path(__file__).resolve().parents[2] / "deploy" / "local"
    assert "export CITYHELP_DEVELOPMENT=1" in (local / "own-stack.sh").read_text(encoding="utf-8")
    for script in ("test.sh", "chaos.sh", "bench.sh"):
        text = (local / script).read_text(encoding="utf-8")
        assert "/own-stack.sh" in text, script
        assert "own_stack " in text, script
    assert 'source "$here/dev-keys.sh"' in (local / "run.sh").read_text(encoding="utf-8")
    keys = (local / "dev-keys.sh").read_text(encoding="utf-8")
    assert 'export CITYHELP_DEVELOPMENT="${CITYHELP_DEVELOPMENT:-1}"' in keys
