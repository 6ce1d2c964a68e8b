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

The memory is bounded (``max_entries``, ``VERIFY_HISTORY_MAX_ENTRIES``): past it, the phones
heard from least recently are forgotten whole. A forgotten phone is an unknown one: its next
request claims slot 1, which exists, so its entries are read back from the database before it
is decided. Forgetting costs reads, never a missed duplicate or flood.
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from collections.abc import AsyncIterable, Iterable

from services.verify.domain import History, HistoryEntry
from shared.db import Document

COLLECTION = "verify_history"


class _Phone:
    """One phone's memory: its next slot, its last requests (any category), and per category
    the last ones with their text, as ``(category, entry)`` pairs. Tuples rather than deques:
    a phone usually has one or two requests, and an empty deque alone takes 760 bytes."""

    __slots__ = ("any", "next", "same")

    def __init__(self) -> None:
        self.next = 1
        self.any: tuple[HistoryEntry, ...] = ()
        self.same: tuple[tuple[str, HistoryEntry], ...] = ()

    @property
    def size(self) -> int:
        return len(self.any) + len(self.same)


class RecentHistory:
    """The last ``limit`` requests of every phone (any category, and per category with their
    normalised text), for at most ``max_entries`` entries in all: the phones heard from least
    recently are forgotten first."""

    def __init__(self, *, limit: int, max_entries: int = 50_000) -> None:
        self.limit = limit
        self.max_entries = max(max_entries, 1)
        self._phones: OrderedDict[str, _Phone] = OrderedDict()  # least recently heard first
        self._entries = 0

    def __len__(self) -> int:
        return len(self._phones)

    @property
    def entries(self) -> int:
        return self._entries

    def of(self, phone: str, category: str, *, excluding: str = "") -> History:
        """What the rules see for this phone and category (a request never sees itself: a
        redelivered one may be in the history already)."""
        known = self._phones.get(phone)
        if known is None:
            return History()
        return History(
            same_category=tuple(
                e for c, e in known.same if c == category and e.request_id != excluding
            ),
            any_category=tuple(e for e in known.any if e.request_id != excluding),
        )

    def next_slot(self, phone: str) -> int:
        known = self._phones.get(phone)
        return known.next if known is not None else 1

    def knows(self, phone: str, request_id: str) -> bool:
        known = self._phones.get(phone)
        return known is not None and any(e.request_id == request_id for e in known.any)

    def load(self, documents: Iterable[Document]) -> int:
        """Remember what :func:`document` stored; returns how many entries were loaded. A phone
        not in memory is taken only when its first slot is among ``documents`` (it was
        forgotten meanwhile, and a part of its sequence would hide the rest: it stays unknown,
        and is read back whole when it is heard from). The bound is applied after the load, so
        no phone is forgotten half-way."""
        docs = list(documents)
        starts = {str(d["phone"]) for d in docs if _slot(d) in (None, 1)}
        for doc in sorted(docs, key=lambda d: (d["submitted_at"], d["request_id"])):
            phone = str(doc["phone"])
            known = self._phones.get(phone)
            if known is None:
                if phone not in starts:
                    continue
                known = self._phones[phone] = _Phone()
            else:
                self._phones.move_to_end(phone)
            self._add(known, doc, newest=True)
        while self._entries > self.max_entries and self._phones:
            self._forget(next(iter(self._phones)))
        return len(docs)

    async def load_recent(self, documents: AsyncIterable[Document]) -> int:
        """At start: the entries of the window, newest first (``submitted_at`` descending).
        Phones are taken whole, most recent first, until the bound; the rest stay unknown (read
        back when they are heard from). Returns how many entries are remembered."""
        full = False
        async for doc in documents:
            phone = str(doc["phone"])
            known = self._phones.get(phone)
            if known is None:
                if full:
                    continue
                known = self._phones[phone] = _Phone()
                self._phones.move_to_end(phone, last=False)  # older than those before it
            self._add(known, doc, newest=False)
            if self._entries > self.max_entries:
                full = True
                self._forget(phone)  # part of it only: unknown instead
        return self._entries

    def _add(self, known: _Phone, doc: Document, *, newest: bool) -> None:
        """One stored entry into a phone's memory, as its newest (or, loading newest first, its
        oldest), once however often it is added; at most ``limit`` per list."""
        slot = _slot(doc)
        if slot is not None:
            known.next = max(known.next, slot + 1)
        request_id, at = str(doc["request_id"]), doc["submitted_at"]
        before = known.size
        if not any(e.request_id == request_id for e in known.any):
            plain = HistoryEntry(request_id, at)
            known.any = _put(known.any, plain, self.limit, newest=newest)
        if doc.get("for_duplicates"):
            category = sys.intern(str(doc["category"]))
            same = [e for c, e in known.same if c == category]
            if not any(e.request_id == request_id for e in same):
                entry = HistoryEntry(request_id, at, str(doc.get("text", "")))
                known.same = _put_same(known.same, category, entry, self.limit, newest=newest)
        self._entries += known.size - before

    def _forget(self, phone: str) -> None:
        known = self._phones.pop(phone)
        self._entries -= known.size


def _slot(doc: Document) -> int | None:
    slot = slot_of(str(doc["_id"]))
    return slot[1] if slot is not None else None


def _put(
    entries: tuple[HistoryEntry, ...], entry: HistoryEntry, limit: int, *, newest: bool
) -> tuple[HistoryEntry, ...]:
    if newest:
        return (*entries, entry)[-limit:]
    return entries if len(entries) >= limit else (entry, *entries)


def _put_same(
    pairs: tuple[tuple[str, HistoryEntry], ...],
    category: str,
    entry: HistoryEntry,
    limit: int,
    *,
    newest: bool,
) -> tuple[tuple[str, HistoryEntry], ...]:
    """``pairs`` with ``entry`` added to its category, which keeps its last ``limit``."""
    count = sum(1 for c, _ in pairs if c == category)
    if newest:
        if count >= limit:  # the category's oldest goes
            oldest = next(i for i, (c, _) in enumerate(pairs) if c == category)
            pairs = pairs[:oldest] + pairs[oldest + 1 :]
        return (*pairs, (category, entry))
    return pairs if count >= limit else ((category, entry), *pairs)


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
