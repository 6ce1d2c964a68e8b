"""Verify's memory of recent requests per phone, for the duplicate and flood rules.

The rules are decided from memory, so a batch of submissions usually costs no database read.
Submissions are keyed by request id, so one phone's requests land on any partition and any
verify process; and a rebalance moves partitions. So the history is a sequence per phone in
``verify_history``: the n-th request of a phone decided anywhere is the document
``"<phone>#<n>"``. A process decides a request from the n - 1 entries it knows, then inserts
entry n (in one insert for the batch). An insert keyed by ``_id`` is atomic: if entry n exists,
another process decided a request of this phone meanwhile; this process reads the entries it
missed (by ``_id``, from n on), and decides again with them. So every decision has seen every
earlier request of its phone, whichever process decided it. At start the entries of the
duplicate window are loaded back.
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
        self._next: dict[str, int] = {}  # the first slot of a phone this process has not seen

    def _bounded(self) -> deque[HistoryEntry]:
        return deque(maxlen=self.limit)

    def __len__(self) -> int:
        return len(self._any)

    def of(self, phone: str, category: str, *, excluding: str = "") -> History:
        """What the rules see for this phone and category (a request never sees itself: a
        redelivered one may be in the history already)."""
        same = self._same.get((phone, category)) or ()
        activity = self._any.get(phone) or ()
        return History(
            same_category=tuple(e for e in same if e.request_id != excluding),
            any_category=tuple(e for e in activity if e.request_id != excluding),
        )

    def next_slot(self, phone: str) -> int:
        return self._next.get(phone, 1)

    def knows(self, phone: str, request_id: str) -> bool:
        return any(e.request_id == request_id for e in self._any.get(phone, ()))

    def add(self, *, phone: str, category: str, entry: HistoryEntry, for_duplicates: bool) -> None:
        """Remember a decided request (once, however often it is added)."""
        _append(self._any[phone], HistoryEntry(entry.request_id, entry.submitted_at))
        if for_duplicates:
            _append(self._same[(phone, category)], entry)

    def load(self, documents: Iterable[Document]) -> int:
        """Remember what :func:`document` stored; returns how many entries were loaded."""
        ordered = sorted(documents, key=lambda d: (d["submitted_at"], d["request_id"]))
        for doc in ordered:
            slot = slot_of(str(doc["_id"]))
            if slot is not None:
                phone, n = slot
                self._next[phone] = max(self._next.get(phone, 1), n + 1)
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


def slot_id(phone: str, n: int) -> str:
    return f"{phone}#{n}"


def slot_of(doc_id: str) -> tuple[str, int] | None:
    phone, sep, n = doc_id.rpartition("#")
    return (phone, int(n)) if sep and n.isdigit() else None


def document(
    *, phone: str, category: str, entry: HistoryEntry, for_duplicates: bool, slot: int
) -> Document:
    """The stored form of one remembered request: the phone's ``slot``-th."""
    return {
        "_id": slot_id(phone, slot),
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
