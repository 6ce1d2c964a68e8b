"""shared/text.py: one pass over a text finds the owners a search per word finds."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.settings import CONFIG_DIR
from shared.text import WordIndex, fold, word_pattern
from shared.triage import load_triage

pytestmark = pytest.mark.unit

TRIAGE = load_triage(CONFIG_DIR / "triage.toml")


def owners_by_search_each(words: dict[str, list[re.Pattern[str]]], text: str) -> set[str]:
    return {owner for owner, patterns in words.items() if any(p.search(text) for p in patterns)}


# Owners whose words begin with one another's, at a word's start and anywhere.
OWNED = {
    "a": ["胸痛", "chest pain", "can't breathe"],
    "b": ["胸", "chest", "диализ"],
    "c": ["ches", "a.b|c", "x(y)", "диал"],
    "d": ["痛", "pain", "x(", "can"],
}


def _index(owned: dict[str, list[str]]) -> tuple[dict[str, list[re.Pattern[str]]], WordIndex[str]]:
    words = {owner: [word_pattern(fold(w)) for w in ws] for owner, ws in owned.items()}
    return words, WordIndex(words)


@pytest.mark.parametrize(
    "text",
    [
        "家里老人胸痛",
        "胸口",
        "my father has chest pain",
        "mychest pain",  # not at the start of a word
        "He can't breathe",
        "нужен диализ",
        "диалог",
        "a.b|c",
        "abc",
        "x(y) z",
        "xy",
        "",
    ],
)
def test_an_index_finds_the_owners_a_search_per_word_finds(text: str) -> None:
    words, index = _index(OWNED)
    assert index.owners_in(fold(text)) == owners_by_search_each(words, fold(text))


# Triage's own words and their first halves, run together or apart.
TRIAGE_WORDS = {
    **{rule.id: list(rule.patterns) for rule in TRIAGE.keywords},
    **{f"term:{name}": list(patterns) for name, patterns in TRIAGE.terms.items()},
}
WHOLE = st.sampled_from(
    [
        p.pattern.removeprefix(r"(?<!\w)").replace("\\", "")
        for ps in TRIAGE_WORDS.values()
        for p in ps
    ]
)
PIECE = WHOLE | WHOLE.map(lambda word: word[: len(word) // 2 + 1])
FILLER = st.sampled_from(["", " ", "a", "的", "x", "1", "，"])
TEXTS = st.lists(st.tuples(FILLER, PIECE), max_size=4).map(
    lambda parts: "".join(a + b for a, b in parts)
)
TRIAGE_INDEX = WordIndex(TRIAGE_WORDS)


@given(TEXTS)
def test_triages_words_in_one_pass_find_the_owners_a_search_each_finds(text: str) -> None:
    assert TRIAGE_INDEX.owners_in(text) == owners_by_search_each(TRIAGE_WORDS, text)


@given(
    st.lists(st.sampled_from(["胸", "痛", "ches", "t pain", "x(", "y)", " ", "a.b|c"]), max_size=6)
)
def test_words_that_begin_alike_are_each_found(parts: list[str]) -> None:
    words, index = _index(OWNED)
    text = fold("".join(parts))
    assert index.owners_in(text) == owners_by_search_each(words, text)


def test_no_words_find_nothing() -> None:
    empty: WordIndex[str] = WordIndex({})
    assert empty.owners_in("anything") == set()
    assert WordIndex({"a": []}).owners_in("") == set()
