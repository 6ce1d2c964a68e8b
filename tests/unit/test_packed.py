"""Packed subdocuments (shared.db.pack): stored as one value, read back as they were written."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared.db import pack, unpack

pytestmark = pytest.mark.unit


def test_a_packed_document_reads_back_whole_with_its_times_aware() -> None:
    at = datetime(2026, 12, 4, 8, 30, 20, 123000, tzinfo=UTC)
    document = {
        "_id": "r-1",
        "contact": {"name": "居民", "phone": "13910000001"},
        "timeline": [{"status": "submitted", "at": at, "sets_status": False}],
        "lat": None,
        "departments": [],
    }
    packed = pack(document)
    assert isinstance(packed, bytes)
    restored = unpack(packed)
    assert restored == document
    assert restored["timeline"][0]["at"].utcoffset() is not None


def test_a_document_stored_as_fields_or_missing_passes_through() -> None:
    assert unpack({"a": 1}) == {"a": 1}
    assert unpack(None) == {}
