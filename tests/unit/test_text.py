"""shared/text.py: one search for many words finds what a search per word finds."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.settings import CONFIG_DIR
from shared.text import any_word, fold, word_pattern
from shared.triage import load_triage

pytestmark = pytest.mark.unit

TRIAGE = load_triage(CONFIG_DIR / "triage.toml")
PATTERNS = [p for rule in TRIAGE.keywords for p in rule.patterns]
WORDS = ["胸痛", "chest pain", "can't breathe", "диализ", "a.b|c", "x(y)"]


def matches_one(patterns: list[re.Pattern[str]], text: str) -> bool:
    return any(p.search(text) for p in patterns)


@pytest.mark.parametrize(
    "text",
    [
        "家里老人胸痛",
        "my father has chest pain",
        "mychest pain",  # not at the start of a word
        "He can't breathe",
        "нужен диализ",
        "a.b|c",
        "abc",
        "x(y) z",
        "xy",
        "",
    ],
)
def test_any_word_matches_where_one_of_the_words_does(text: str) -> None:
    patterns = [word_pattern(fold(w)) for w in WORDS]
    assert bool(any_word(patterns).search(fold(text))) == matches_one(patterns, fold(text))


# Triage's own words and their first halves, run together or apart.
WHOLE = st.sampled_from([p.pattern.removeprefix(r"(?<!\w)").replace("\\", "") for p in PATTERNS])
PIECE = WHOLE | WHOLE.map(lambda word: word[: len(word) // 2 + 1])
FILLER = st.sampled_from(["", " ", "a", "的", "x", "1", "，"])
TEXTS = st.lists(st.tuples(FILLER, PIECE), max_size=4).map(
    lambda parts: "".join(a + b for a, b in parts)
)


@given(TEXTS)
def test_triages_words_in_one_search_find_what_a_search_each_finds(text: str) -> None:
    assert bool(any_word(PATTERNS).search(text)) == matches_one(PATTERNS, text)


def test_no_words_match_nothing() -> None:
    assert any_word([]).search("anything") is None
    assert any_word([]).search("") is None
