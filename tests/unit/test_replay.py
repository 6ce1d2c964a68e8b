"""The timeline rebuilt from topic records (tools/replay.py): pure functions."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from shared.kafka import effect_id
from shared.topics import Topic
from tools import replay
from tools.replay import Entry

pytestmark = pytest.mark.unit

T = datetime(2026, 1, 9, 6, 5, 0, 123456, tzinfo=UTC)
T_MS = T.replace(microsecond=123000)


def record(
    topic: Topic, value: dict[str, object], **headers: str
) -> tuple[Topic, bytes, bytes, dict[str, str]]:
    return topic, b"r1", json.dumps(value).encode(), headers


def test_each_topic_names_its_entry_and_a_repeat_is_one_entry() -> None:
    rebuilt = replay.rebuild(
        [
            record(Topic.SUBMITTED, {"submitted_at": T.isoformat()}, ce_id="s"),
            record(Topic.REVIEW, {"flagged_at": T.isoformat()}, ce_id="v"),
            record(Topic.REJECTED, {"rejected_at": T.isoformat(), "duplicate_of": "r0"}, ce_id="d"),
            record(Topic.DISPATCH_MEDICAL, {"dispatched_at": T.isoformat()}, ce_id="j"),
            record(Topic.DISPATCH_MEDICAL, {"dispatched_at": T.isoformat()}, ce_id="j"),
            record(
                Topic.DISPATCH_MEDICAL,
                {"added_at": T.isoformat()},
                ce_id="i",
                ce_type="city.help.leg.info_added.v1",
            ),
            record(Topic.LIFECYCLE, {"status": "closed", "at": T.isoformat()}, ce_id="c"),
            record(Topic.DLQ_NOTIFY, {}, notification_id="n1", dlq_at=T.isoformat()),
        ]
    )
    assert {(e.status, e.event_id) for e in rebuilt["r1"]} == {
        ("submitted", "s"),
        ("needs_review", "v"),
        ("duplicate", "d"),
        ("dispatched", "j"),
        ("info_added", "i"),
        ("closed", "c"),
        ("notification_failed", effect_id("notify-failed", "n1")),
    }
    assert {e.at for e in rebuilt["r1"]} == {T_MS}, "compared to the millisecond"


def test_a_record_without_its_fields_causes_no_entry() -> None:
    assert replay.rebuild([record(Topic.VERIFIED, {"nothing": 1}, ce_id="x")]) == {}
    assert replay.rebuild([(Topic.VERIFIED, b"r1", b"not json", {"ce_id": "x"})]) == {}


def test_differences_name_what_is_missing_on_either_side_and_what_differs() -> None:
    a, b, c = (Entry(T_MS, "submitted", "a"), Entry(T_MS, "verified", "b"), Entry(T_MS, "x", "c"))
    assert replay.differences([a, b], [a, b]) == []
    lines = replay.differences([a, b], [a, c, Entry(T_MS, "rejected", "a")])
    assert any(line.startswith("  only on the topics:") and " b" in line for line in lines)
    assert any(line.startswith("  only stored:") and " c" in line for line in lines)
    assert any(line.startswith("  differs:") for line in lines)
