"""Duplicates and floods: what the same phone asked before (by its one normalised number)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from rapidfuzz import fuzz

from services.verify.domain.config import Rules
from shared.text import fold, is_cjk


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One earlier request of the same phone (and category, for duplicates)."""

    request_id: str
    submitted_at: datetime
    text: str = ""  # the normalised description (duplicate index only)


@dataclass(frozen=True, slots=True)
class History:
    """What verify remembers about the phone: recent requests of the same category (for
    duplicates) and of any category (for the flood rule)."""

    same_category: tuple[HistoryEntry, ...] = ()
    any_category: tuple[HistoryEntry, ...] = ()


def _earlier(
    entries: Iterable[HistoryEntry], request_id: str, at: datetime, window: timedelta
) -> list[HistoryEntry]:
    """Entries submitted within ``window`` before ``at``, other than the request itself (so a
    redelivered request is judged against the same history as the first time)."""
    return [
        e
        for e in entries
        if e.request_id != request_id
        and at - window <= e.submitted_at
        and (e.submitted_at, e.request_id) < (at, request_id)
    ]


def is_flood(
    activity: Sequence[HistoryEntry], *, request_id: str, at: datetime, rules: Rules
) -> bool:
    """More than the allowed number of requests from one phone within the flood window."""
    return len(_earlier(activity, request_id, at, rules.flood_window)) >= rules.flood_max_requests


def normalise_description(description: str) -> str:
    """Folded text, punctuation replaced by spaces, whitespace collapsed; at most 500 chars."""
    folded = fold(description)
    words = "".join(c if c.isalnum() else " " for c in folded).split()
    return " ".join(words)[:500]


def similarity(a: str, b: str, *, min_partial_chars: int = 6) -> float:
    """0–100: how alike two normalised descriptions are.

    Chinese is compared character by character and clause by clause (plus containment for
    texts long enough to mean something); space-separated languages by their word sets, so
    word order and extra words matter less.
    """
    if not a or not b:
        return 0.0
    if any(is_cjk(c) for c in a + b):
        x, y = a.replace(" ", ""), b.replace(" ", "")
        # Clauses (split at punctuation) in any order, then character by character.
        score = max(float(fuzz.token_sort_ratio(a, b)), float(fuzz.ratio(x, y)))
        if min(len(x), len(y)) >= min_partial_chars:
            score = max(score, float(fuzz.partial_ratio(x, y)))
        return score
    return float(fuzz.token_set_ratio(a, b))


def find_duplicate(
    text: str,
    *,
    request_id: str,
    at: datetime,
    history: Sequence[HistoryEntry],
    rules: Rules,
) -> str | None:
    """The id of the earliest earlier request this one repeats, if any."""
    candidates = sorted(
        _earlier(history, request_id, at, rules.duplicate_window),
        key=lambda e: (e.submitted_at, e.request_id),
    )
    for entry in candidates:
        score = similarity(text, entry.text, min_partial_chars=rules.min_partial_chars)
        if score >= rules.duplicate_threshold:
            return entry.request_id
    return None
