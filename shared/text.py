"""Text forms the services compare words and names in: width-, case- and accent-insensitive.

Shared because intake's fast lane and verify's triage must read a description the same way.
"""

from __future__ import annotations

import re
import unicodedata


def fold(text: str) -> str:
    """Width-, case- and accent-insensitive form: full-width → ASCII, ё → е, tone marks gone."""
    text = unicodedata.normalize("NFKC", text).casefold().replace("ё", "е")
    decomposed = unicodedata.normalize("NFD", text)
    # Drop combining marks (pinyin tones, "й" → "и" is harmless for matching), then recompose.
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return unicodedata.normalize("NFC", stripped)


def is_cjk(char: str) -> bool:
    return "\u3400" <= char <= "\u9fff" or "\uf900" <= char <= "\ufaff"


def word_pattern(word: str) -> re.Pattern[str]:
    """Chinese words match anywhere; other words at the start of a word (prefix for endings)."""
    if any(is_cjk(c) for c in word):
        return re.compile(re.escape(word))
    return re.compile(r"(?<!\w)" + re.escape(word))


def compact(text: str) -> str:
    """Letters and digits only (no spaces, dashes, punctuation)."""
    return "".join(c for c in text if c.isalnum())
