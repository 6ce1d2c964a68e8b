"""Text forms the services compare words and names in: width-, case- and accent-insensitive.

Shared because intake's fast lane and verify's triage must read a description the same way.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable


def fold(text: str) -> str:
    """Width-, case- and accent-insensitive form: full-width → ASCII, ё → е, tone marks gone."""
    text = unicodedata.normalize("NFKC", text).casefold().replace("ё", "е")
    decomposed = unicodedata.normalize("NFD", text)
    # Drop combining marks (pinyin tones, "й" → "и" is harmless for matching), then recompose.
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return unicodedata.normalize("NFC", stripped)


def is_cjk(char: str) -> bool:
    return "\u3400" <= char <= "\u9fff" or "\uf900" <= char <= "\ufaff"


_WORD_START = r"(?<!\w)"


def word_pattern(word: str) -> re.Pattern[str]:
    """Chinese words match anywhere; other words at the start of a word (prefix for endings)."""
    if any(is_cjk(c) for c in word):
        return re.compile(re.escape(word))
    return re.compile(_WORD_START + re.escape(word))


def any_word(patterns: Iterable[re.Pattern[str]]) -> re.Pattern[str]:
    """One pattern that matches where any of ``patterns`` (made by :func:`word_pattern`)
    does. One search instead of one per word, and with the start-of-word condition written
    once the regex engine skips ahead on the words' letters: about ten times faster on
    triage's words. No patterns: a pattern that never matches."""
    anywhere, at_word_start = [], []
    for pattern in patterns:
        if pattern.pattern.startswith(_WORD_START):
            at_word_start.append(pattern.pattern.removeprefix(_WORD_START))
        else:
            anywhere.append(pattern.pattern)
    parts = [f"(?:{p})" for p in anywhere]
    if at_word_start:
        parts.append(_WORD_START + "(?:" + "|".join(at_word_start) + ")")
    return re.compile("|".join(parts) or "(?!)")


def compact(text: str) -> str:
    """Letters and digits only (no spaces, dashes, punctuation)."""
    return "".join(c for c in text if c.isalnum())
