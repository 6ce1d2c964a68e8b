from __future__ import annotations

from pathlib import Path

import pytest

from shared.web.i18n import Catalogue, as_language, negotiate, parse_accept_language
from shared.web.pages import WEB_DIR

pytestmark = pytest.mark.unit
SERVICES = Path(__file__).resolve().parents[2] / "services"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("zh", "zh"),
        ("zh-CN", "zh"),
        ("zh_Hant_TW", "zh"),
        ("EN-gb", "en"),
        ("ru", "ru"),
        ("de", None),
        ("", None),
        (None, None),
        ("english", None),
    ],
)
def test_as_language(value: str | None, expected: str | None) -> None:
    assert as_language(value) == expected


def test_accept_language_ordered_by_quality_then_position() -> None:
    header = "de-DE,de;q=0.9,ru;q=0.8,en-US;q=0.8,en;q=0.7,zh;q=0"
    assert parse_accept_language(header) == ["ru", "en"]


def test_accept_language_tolerates_garbage() -> None:
    assert parse_accept_language("en;q=abc, ;;, ru") == ["ru"]
    assert parse_accept_language(None) == []


def test_negotiation_order_query_cookie_header_default() -> None:
    assert negotiate(query="ru", cookie="en", accept_language="en") == "ru"
    assert negotiate(query="xx", cookie="en", accept_language="ru") == "en"
    assert negotiate(cookie="fr", accept_language="fr, ru;q=0.5") == "ru"
    assert negotiate(accept_language="fr, de") == "zh"
    assert negotiate() == "zh"


def test_catalogue_merges_and_falls_back(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "zh.toml").write_text('[x]\nhello = "你好 {name}"\nonly_zh = "仅中文"\n')
    (tmp_path / "a" / "en.toml").write_text('[x]\nhello = "Hello {name}"\n')
    (tmp_path / "b" / "en.toml").write_text('[x]\nhello = "Hi {name}"\n')
    cat = Catalogue.load([tmp_path / "a", tmp_path / "b"])
    assert cat.gettext("en", "x.hello", name="Li") == "Hi Li"
    assert cat.gettext("en", "x.only_zh") == "仅中文"
    assert cat.gettext("ru", "x.nothing") == "x.nothing"
    assert cat.missing_keys() == {"en": {"x.only_zh"}, "ru": {"x.hello", "x.only_zh"}}


@pytest.mark.parametrize(
    "service_dir",
    [None, *sorted(p for p in SERVICES.iterdir() if (p / "messages").is_dir())],
)
def test_every_catalogue_has_every_key_in_every_language(service_dir: Path | None) -> None:
    dirs = [WEB_DIR / "messages"] + ([service_dir / "messages"] if service_dir else [])
    cat = Catalogue.load(dirs)
    assert cat.missing_keys() == {}
    assert all(cat.messages[lang] for lang in ("zh", "en", "ru"))
