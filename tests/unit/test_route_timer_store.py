"""Where route's timers are kept: a collection per minute of due time (the scan reads the
minutes begun), overdue ones in ``sla_timers``."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

import pytest

from services.route import timer_store
from services.route.timer_store import TIMERS, bucket_of, drained, place, to_scan
from shared.db import collection_label

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 2, 8, 30, 20, tzinfo=UTC)


def test_a_bucket_is_named_by_the_utc_minute_of_the_due_time() -> None:
    assert bucket_of(NOW) == "sla_timers_202612020830"
    beijing = timezone(timedelta(hours=8))
    assert bucket_of(datetime(2026, 12, 2, 16, 30, 59, tzinfo=beijing)) == bucket_of(NOW)
    assert bucket_of(datetime(2026, 12, 2, 8, 30)) == bucket_of(NOW), "naive reads as UTC"
    assert timer_store.bucket_start(bucket_of(NOW)) == NOW.replace(second=0)
    assert timer_store.bucket_start(TIMERS) is None
    assert timer_store.bucket_start("sla_timers_soon") is None


def test_every_level_names_a_bucket_by_the_utc_time_of_the_due_time_in_its_format() -> None:
    # Boundaries first (the last microsecond of a minute, hour, day and year), then random
    # times in several zones and naive ones, each against the UTC time formatted directly.
    rng = random.Random(3)
    edges = [
        datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
    ]
    zones = [UTC, timezone(timedelta(hours=8)), timezone(timedelta(hours=-9, minutes=-30))]
    randoms = [
        datetime(2020, 1, 1, tzinfo=UTC)
        + timedelta(microseconds=rng.randrange(10 * 365 * 86_400 * 10**6))
        for _ in range(3000)
    ]
    for at in edges + randoms:
        utc = at.astimezone(UTC)
        for level in timer_store.LEVELS:
            expected = f"sla_timers_{utc:{level.format}}"
            for zone in zones:
                assert level.name(at.astimezone(zone)) == expected
            assert level.name(utc.replace(tzinfo=None)) == expected, "naive reads as UTC"


def test_a_timer_goes_to_the_bucket_of_its_lead_unless_its_minute_has_passed() -> None:
    assert place(NOW + timedelta(minutes=89), now=NOW) == "sla_timers_202612020959"
    assert place(NOW + timedelta(hours=2), now=NOW) == "sla_timers_2026120210", "by its hour"
    assert place(NOW + timedelta(days=3), now=NOW) == "sla_timers_20261205", "by its day"
    assert place(NOW - timedelta(seconds=15), now=NOW) == bucket_of(NOW), "this minute"
    assert place(NOW - timedelta(seconds=21), now=NOW) == TIMERS
    assert place(NOW - timedelta(days=1), now=NOW) == TIMERS


def test_a_scan_reads_the_overdue_timers_and_the_minutes_begun_only() -> None:
    names = [
        "sla_claims",
        "legs",
        "sla_timers_202612020829",
        "sla_timers_202612020831",
        "sla_timers_202612020830",
        "sla_timers_202612020700",
        "sla_timers_later",
        "sla_timers_2026120209",  # begins in 30 minutes
        "sla_timers_2026120208",
        "sla_timers_20261203",
    ]
    assert to_scan(names, now=NOW) == [
        TIMERS,
        "sla_timers_202612020700",
        "sla_timers_2026120208",
        "sla_timers_202612020829",
        "sla_timers_202612020830",
    ]
    assert "sla_timers_2026120209" in to_scan(names, now=NOW + timedelta(minutes=10))
    assert "sla_timers_20261203" in to_scan(names, now=datetime(2026, 12, 2, 18, tzinfo=UTC))
    assert to_scan([], now=NOW) == [TIMERS]


def test_an_emptied_bucket_is_dropped_only_after_the_grace() -> None:
    bucket = bucket_of(NOW)
    end = NOW.replace(second=0) + timer_store.MINUTE.step
    assert not drained(bucket, now=NOW)
    assert not drained(bucket, now=end + timer_store.DRAIN_GRACE - timedelta(seconds=1))
    assert drained(bucket, now=end + timer_store.DRAIN_GRACE)
    assert not drained(TIMERS, now=NOW + timedelta(days=1)), "the overdue timers stay"
    hour = "sla_timers_2026120209"
    assert not drained(hour, now=NOW)
    assert drained(hour, now=NOW + timedelta(minutes=10)), "once the scan reads it"


def test_a_writer_stops_choosing_an_hour_bucket_before_the_scan_reads_it() -> None:
    hour = "sla_timers_2026120209"
    start = timer_store.bucket_start(hour)
    assert start is not None
    read_from = start - timer_store.HOUR.ahead
    # The last writer to choose it, for a deadline at the hour's end:
    assert timer_store.MINUTE.lead is not None
    last = start + timedelta(minutes=59, seconds=59) - timer_store.MINUTE.lead
    assert place(start + timedelta(minutes=59, seconds=59), now=last) == hour
    assert read_from - last >= timedelta(minutes=10)
    # What the scan finds in it goes into minute buckets.
    for minute in range(60):
        due = start + timedelta(minutes=minute)
        assert place(due, now=read_from) == bucket_of(due)


def test_the_database_metric_labels_a_bucket_by_its_family() -> None:
    assert collection_label(bucket_of(NOW)) == "sla_timers_*"
    assert collection_label(TIMERS) == TIMERS
    assert collection_label("verify_history") == "verify_history"
    retired = timer_store.retired_name(timer_store.HOUR.name(NOW), now=NOW)
    assert collection_label(retired) == "sla_timers_retired_*"


def test_a_retired_bucket_is_named_by_its_stamp_and_when_it_was_retired() -> None:
    hour = timer_store.HOUR.name(NOW)
    retired = timer_store.retired_name(hour, now=NOW)
    assert retired == "sla_timers_retired_2026120208_20261202083020000000"
    assert timer_store.retired_at(retired) == NOW
    assert timer_store.parse(retired) is None, "no writer's place, no bucket to scan"
    assert retired not in to_scan([retired, hour], now=NOW)
    beijing = timezone(timedelta(hours=8))
    assert timer_store.retired_name(hour, now=NOW.astimezone(beijing)) == retired
    assert timer_store.retired_at(hour) is None
    assert timer_store.retired_at("sla_timers_retired_2026120208_soon") is None
