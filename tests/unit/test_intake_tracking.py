from __future__ import annotations

import pytest

from services.intake import tracking

pytestmark = pytest.mark.unit


def test_codes_are_eight_characters_of_the_unambiguous_alphabet() -> None:
    codes = {tracking.new_code() for _ in range(2000)}
    assert len(codes) == 2000
    for code in codes:
        assert len(code) == tracking.LENGTH
        assert set(code) <= set(tracking.ALPHABET)
    assert not set("01ILO") & set(tracking.ALPHABET)


def test_display_groups_four_and_four() -> None:
    assert tracking.display("ABCD2345") == "ABCD-2345"


@pytest.mark.parametrize(
    "typed",
    ["ABCD2345", "abcd2345", "ABCD-2345", " abcd 2345 ", "ＡＢＣＤ－２３４５", "ab-cd-23-45"],
)
def test_what_a_caller_types_comes_back_to_the_code(typed: str) -> None:
    assert tracking.normalise(typed) == "ABCD2345"


@pytest.mark.parametrize(
    "typed", [None, "", "ABCD234", "ABCD23456", "ABCD0345", "ABCD1345", "ABCO2345", "x" * 50]
)
def test_anything_else_is_not_a_code(typed: str | None) -> None:
    assert tracking.normalise(typed) is None


def test_a_displayed_code_reads_back() -> None:
    code = tracking.new_code()
    assert tracking.normalise(tracking.display(code)) == code
