"""The one phone normaliser (shared/phones.py): its fast path for Chinese mobile numbers
answers exactly what the parser answers, for any text."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared import phones
from shared.jurisdiction import load_jurisdiction

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
ZHENGZHOU = load_jurisdiction(REPO / "config" / "jurisdiction.toml")

digits = st.text(alphabet="0123456789", min_size=1, max_size=14)
# Mostly the common shape (11 digits from 1, any second digit, so 10x–12x and 179 too), in
# the ways it is typed; then anything with digits, separators and prefixes in it.
mobile = st.builds(
    lambda a, b: f"1{a}{b}",
    st.sampled_from("0123456789"),
    st.text("0123456789", min_size=9, max_size=9),
)
prefix = st.sampled_from(["", "", "+86", "+86 ", "0086", "0086-", "86", "+", "0", "+1", "+7 "])
separator = st.sampled_from(["", " ", "-", "  ", "\t", "(", ")", ".", "/", "－", "\u3000"])


@st.composite
def typed_mobile(draw: st.DrawFn) -> str:
    number = draw(mobile)
    cuts = sorted(draw(st.lists(st.integers(1, len(number) - 1), max_size=3)))
    parts, start = [], 0
    for cut in cuts:
        parts.append(number[start:cut])
        start = cut
    parts.append(number[start:])
    text = draw(prefix) + "".join(p + draw(separator) for p in parts)
    if draw(st.booleans()):
        text = text.strip()
    if draw(st.integers(0, 9)) == 0:  # full-width digits now and then
        text = text.translate(str.maketrans("0123456789", "０１２３４５６７８９"))
    return text


phone_texts = st.one_of(
    typed_mobile(),
    typed_mobile(),
    digits,
    st.text(alphabet="0123456789+- ()", max_size=20),
    st.text(max_size=20),
)


@settings(max_examples=3000, deadline=None)
@given(phone_texts)
def test_the_fast_path_answers_what_the_parser_answers(raw: str) -> None:
    assert phones.normalise_phone(raw, ZHENGZHOU) == phones.parsed_phone(raw, ZHENGZHOU)


@settings(max_examples=500, deadline=None)
@given(st.integers(10_000_000_000, 19_999_999_999))
def test_every_eleven_digit_number_from_1_is_read_alike(number: int) -> None:
    for raw in (str(number), f"+86 {number}", f"0086{number}"):
        assert phones.normalise_phone(raw, ZHENGZHOU) == phones.parsed_phone(raw, ZHENGZHOU)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("139 0000 0001", "+8613900000001"),
        ("139-0000-0001", "+8613900000001"),
        ("+86 139 0000 0001", "+8613900000001"),
        ("008613900000001", "+8613900000001"),
        ("13800138000", "+8613800138000"),
    ],
)
def test_the_common_shapes_do_not_need_the_parser(
    raw: str, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refused(*args: object, **kwargs: object) -> None:
        raise AssertionError("parsed")

    monkeypatch.setattr(phonenumbers, "parse", refused)
    assert phones.normalise_phone(raw, ZHENGZHOU) == phones.PhoneCheck(expected)
    assert phones.phone_identity(raw, ZHENGZHOU) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "17900000000",
        "+86 179 0000 0000",
        "17951 1390 0000",
        "1790000000",
        "12345678901",
        "0139 0000 0001",
        "６７８９ １２３４",
    ],
)
def test_other_shapes_go_to_the_parser(raw: str, parser_calls: list[str]) -> None:
    found = phones.normalise_phone(raw, ZHENGZHOU)
    assert parser_calls, "read by the parser"
    assert found == phones.parsed_phone(raw, ZHENGZHOU)


def test_another_country_never_takes_the_fast_path(parser_calls: list[str]) -> None:
    elsewhere = replace(ZHENGZHOU, phone_region="RU", country_code=7)
    raw = "+86 139 0000 0001"
    found = phones.normalise_phone(raw, elsewhere)
    assert parser_calls, "read by the parser"
    assert found == phones.parsed_phone(raw, elsewhere)


@pytest.fixture
def parser_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The texts given to ``phonenumbers.parse`` from now on."""
    calls: list[str] = []
    parse = phonenumbers.parse

    def counting(text: str, region: str | None = None) -> phonenumbers.PhoneNumber:
        calls.append(text)
        return parse(text, region)

    monkeypatch.setattr(phonenumbers, "parse", counting)
    return calls
