"""Verify's memory of recent requests per phone, for the duplicate and flood rules.

The rules are decided from memory, so a batch of submissions costs no database read. Each
remembered request is also inserted once into ``verify_history`` (``_id`` =
``"<phone>|<request id>"``, keyed by its cause, so a repeat changes nothing); at start the
entries of the duplicate window are loaded back, so a restart forgets nothing.

Replicas of verify each remember the requests they decided: two requests of one phone decided
by two replicas within the same few seconds are not compared with each other until one of
them restarts (docs/delivery.md).
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable
from datetime import datetime, timedelta

from services.verify.domain import History, HistoryEntry
from shared.db import Document

COLLECTION = "verify_history"


class RecentHistory:
    """The last ``limit`` requests of every phone (any category, and per category with their
    normalised text), dropped once older than ``window``."""

    def __init__(self, *, limit: int, window: timedelta) -> None:
        self.limit = limit
        self.window = window
        self._any: dict[str, deque[HistoryEntry]] = defaultdict(self._bounded)
        self._same: dict[tuple[str, str], deque[HistoryEntry]] = defaultdict(self._bounded)

    def _bounded(self) -> deque[HistoryEntry]:
        return deque(maxlen=self.limit)

    def __len__(self) -> int:
        return len(self._any)

    def of(self, phone: str, category: str) -> History:
        """What the rules see for this phone and category."""
        same = self._same.get((phone, category))
        activity = self._any.get(phone)
        return History(
            same_category=tuple(same) if same else (),
            any_category=tuple(activity) if activity else (),
        )

    def add(self, *, phone: str, category: str, entry: HistoryEntry, for_duplicates: bool) -> None:
        """Remember a decided request (once, however often it is added)."""
        _append(self._any[phone], HistoryEntry(entry.request_id, entry.submitted_at))
        if for_duplicates:
            _append(self._same[(phone, category)], entry)

    def load(self, documents: Iterable[Document]) -> int:
        """Remember what :func:`document` stored; returns how many entries were loaded."""
        ordered = sorted(documents, key=lambda d: (d["submitted_at"], d["request_id"]))
        for doc in ordered:
            self.add(
                phone=doc["phone"],
                category=doc["category"],
                entry=HistoryEntry(doc["request_id"], doc["submitted_at"], doc.get("text", "")),
                for_duplicates=bool(doc.get("for_duplicates")),
            )
        return len(ordered)

    def forget_before(self, cutoff: datetime) -> None:
        """Drop phones whose newest request is older than ``cutoff`` (memory stays bounded)."""
        for table in (self._any, self._same):
            stale = [key for key, entries in table.items() if entries[-1].submitted_at < cutoff]
            for key in stale:
                del table[key]  # type: ignore[arg-type]


def document(*, phone: str, category: str, entry: HistoryEntry, for_duplicates: bool) -> Document:
    """The stored form of one remembered request, keyed by its phone and request id."""
    return {
        "_id": f"{phone}|{entry.request_id}",
        "phone": phone,
        "category": category,
        "request_id": entry.request_id,
        "submitted_at": entry.submitted_at,
        "text": entry.text if for_duplicates else "",
        "for_duplicates": for_duplicates,
    }


def cutoff(now: datetime, window: timedelta) -> datetime:
    return now - window


def _append(entries: deque[HistoryEntry], entry: HistoryEntry) -> None:
    if any(e.request_id == entry.request_id for e in entries):
        return
    entries.append(entry)
