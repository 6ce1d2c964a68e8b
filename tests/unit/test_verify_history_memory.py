"""Verify's in-memory per-phone history: bounded, and never a part of a phone's sequence."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime, timedelta

import pytest

from services.verify.domain import HistoryEntry
from services.verify.history import RecentHistory, document
from shared.db import Document

pytestmark = pytest.mark.unit

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def entry_doc(phone: str, slot: int, *, minutes: int = 0, category: str = "medical") -> Document:
    return document(
        phone=phone,
        category=category,
        entry=HistoryEntry(f"{phone}-{slot}", T0 + timedelta(minutes=minutes), f"text {slot}"),
        for_duplicates=True,
        slot=slot,
    )


async def stream(docs: Iterable[Document]) -> AsyncIterator[Document]:
    for doc in docs:
        yield doc


def test_a_phone_keeps_its_last_requests_per_list() -> None:
    history = RecentHistory(limit=3)
    history.load([entry_doc("+1", n, minutes=n) for n in range(1, 6)])
    seen = history.of("+1", "medical")
    assert [e.request_id for e in seen.any_category] == ["+1-3", "+1-4", "+1-5"]
    assert [e.text for e in seen.same_category] == ["text 3", "text 4", "text 5"]
    assert history.next_slot("+1") == 6
    assert history.entries == 6
    assert history.of("+1", "food_supply").same_category == ()


def test_the_phones_heard_from_least_recently_are_forgotten_whole_past_the_bound() -> None:
    history = RecentHistory(limit=20, max_entries=6)  # two entries a request here
    history.load([entry_doc("+1", 1, minutes=1)])
    history.load([entry_doc("+2", 1, minutes=2)])
    history.load([entry_doc("+1", 2, minutes=3)])  # +1 heard from again: +2 is the oldest
    history.load([entry_doc("+3", 1, minutes=4)])
    assert history.entries == 6
    assert history.next_slot("+2") == 1  # forgotten: its next claim reads it back
    assert history.of("+2", "medical").any_category == ()
    assert (history.next_slot("+1"), history.next_slot("+3")) == (3, 2)
    assert len(history.of("+1", "medical").same_category) == 2


def test_a_forgotten_phone_is_not_taken_back_from_a_part_of_its_sequence() -> None:
    history = RecentHistory(limit=20)
    history.load([entry_doc("+1", 3, minutes=3)])  # slots 1 and 2 not in memory
    assert history.next_slot("+1") == 1
    assert len(history) == 0
    # Read back from its first slot (the conflict on slot 1), in any submission order.
    history.load([entry_doc("+1", 2, minutes=1), entry_doc("+1", 1, minutes=2)])
    assert history.next_slot("+1") == 3
    assert {e.request_id for e in history.of("+1", "medical").any_category} == {"+1-1", "+1-2"}


def test_an_entry_loaded_twice_is_remembered_once() -> None:
    history = RecentHistory(limit=20)
    history.load([entry_doc("+1", 1)])
    history.load([entry_doc("+1", 1)])
    assert history.entries == 2
    assert history.knows("+1", "+1-1")


async def test_at_start_the_newest_phones_are_taken_whole_up_to_the_bound() -> None:
    history = RecentHistory(limit=20, max_entries=6)  # two entries a request here
    newest_first = [
        entry_doc("+3", 1, minutes=9),
        entry_doc("+2", 2, minutes=8),
        entry_doc("+1", 3, minutes=7),  # +1's slots 1 and 2 lie before the window
        entry_doc("+2", 1, minutes=6),  # +2 now 4 entries: 8 in all, over the bound
        entry_doc("+4", 1, minutes=5),  # none taken once full
    ]
    assert await history.load_recent(stream(newest_first)) == 4
    assert history.next_slot("+3") == 2
    assert history.next_slot("+1") == 4  # its window, whole
    assert history.next_slot("+2") == 1  # only a part fitted: unknown instead
    assert history.next_slot("+4") == 1
    assert [e.request_id for e in history.of("+1", "medical").any_category] == ["+1-3"]
