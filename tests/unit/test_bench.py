"""The pure parts of `make bench`: percentiles, ratios, parsing of Kafka's tools and of
Prometheus text, the outcome counts and the summary line."""

from __future__ import annotations

import os

import pytest
from aiokafka.structs import ConsumerRecord

from tests.bench import bodies
from tests.bench.__main__ import highest_step
from tests.bench.backlog import BacklogResult
from tests.bench.load import connections_for, parse_wrk_output
from tests.bench.procs import parse_ppid, parse_stat_cpu, parse_vm_hwm_mb
from tests.bench.report import Run, lines
from tests.bench.stats import (
    DbTime,
    Quantile,
    Summary,
    ceiling_ratio,
    db_command_totals,
    db_time,
    db_write_commands,
    delta,
    held,
    parse_consumer_performance,
    parse_producer_performance,
    per_request,
    percentile,
    step_for_headline,
    summary_line,
    table,
)
from tests.bench.watch import VERIFIED, Observed, Track, outcomes, per_second

pytestmark = pytest.mark.unit


def exact(*ms: float) -> list[tuple[float, bool]]:
    return [(m, False) for m in ms]


def test_percentile_is_nearest_rank() -> None:
    values = exact(*range(1, 101))  # 1..100
    assert percentile(values, 50) == Quantile(50)
    assert percentile(values, 95) == Quantile(95)
    assert percentile(values, 99) == Quantile(99)
    assert percentile(values, 100) == Quantile(100)
    assert percentile(exact(7, 3, 5), 50) == Quantile(5)
    assert percentile(exact(7, 3, 5), 1) == Quantile(3)
    assert percentile(exact(42), 99) == Quantile(42)


def test_percentile_of_nothing_and_out_of_range() -> None:
    assert percentile([], 99) is None
    with pytest.raises(ValueError, match="outside"):
        percentile(exact(1), 0)
    with pytest.raises(ValueError, match="outside"):
        percentile(exact(1), 101)


def test_a_percentile_on_a_censored_value_is_a_lower_bound() -> None:
    # 98 dispatched within 10 ms; two still waiting after 60 s: p99 is "> 60000".
    values = [*exact(*[10.0] * 98), (60_000.0, True), (61_000.0, True)]
    p50, p99 = percentile(values, 50), percentile(values, 99)
    assert p50 == Quantile(10.0)
    assert p99 == Quantile(60_000.0, censored=True)
    assert p99.text() == ">60000"
    assert Quantile(12.4).text() == "12"


def test_ratios_against_a_ceiling() -> None:
    # 42,000 records/s; 6 records per request: Kafka allows 7,000 requests/s; 70 is 1 %.
    assert ceiling_ratio(70, 42_000, 6) == pytest.approx(0.01)
    # 4,500 documents/s; 9 writes per request: 500 requests/s; 250 is half of it.
    assert ceiling_ratio(250, 4_500, 9) == pytest.approx(0.5)
    assert ceiling_ratio(70, 0, 6) is None
    assert ceiling_ratio(70, 42_000, None) is None
    assert per_request(30, 10) == 3
    assert per_request(30, 0) is None


def test_producer_performance_final_line_is_parsed() -> None:
    output = (
        "25667 records sent, 5100.8 records/sec (3.41 MB/sec), 2225.5 ms avg latency, "
        "3206.0 ms max latency.\n"
        "200000 records sent, 15212.6 records/sec (10.16 MB/sec), 2510.35 ms avg latency, "
        "4248.00 ms max latency, 2514 ms 50th, 3967 ms 95th, 4179 ms 99th, 4235 ms 99.9th.\n"
    )
    perf = parse_producer_performance(output)
    assert perf is not None
    assert perf.records == 200_000
    assert perf.per_s == pytest.approx(15212.6)
    assert perf.mb_per_s == pytest.approx(10.16)
    assert perf.p50_ms == 2514
    assert perf.p99_ms == 4179
    assert parse_producer_performance("Exception in thread main") is None


def test_consumer_performance_columns_are_parsed() -> None:
    output = (
        "WARN something\n"
        "start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, "
        "rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec\n"
        "2026-12-01 21:16:08:166, 2026-12-01 21:16:11:121, 133.5144, 45.1825, 200000, "
        "67681.8951, 1171, 1784, 74.8399, 112107.6233\n"
    )
    parsed = parse_consumer_performance(output)
    assert parsed is not None
    assert parsed["data.consumed.in.nMsg"] == "200000"
    assert float(parsed["fetch.nMsg.sec"]) == pytest.approx(112107.6233)
    assert parsed["start.time"] == "2026-12-01 21:16:08:166"
    assert parse_consumer_performance("no header here") is None


def test_database_write_commands_from_metrics() -> None:
    text = (
        "# HELP cityhelp_db_command_seconds Time a database command took\n"
        'cityhelp_db_command_seconds_count{collection="requests",command="insert",'
        'outcome="ok"} 58.0\n'
        'cityhelp_db_command_seconds_count{collection="requests",command="insert",'
        'outcome="error"} 2.0\n'
        'cityhelp_db_command_seconds_count{collection="requests",command="find",outcome="ok"} 9\n'
        'cityhelp_db_command_seconds_bucket{collection="legs",command="update",le="0.1"} 4\n'
        'cityhelp_db_command_seconds_count{collection="legs",command="update",outcome="ok"} 5\n'
    )
    assert db_write_commands(text) == {"insert:requests": 60.0, "update:legs": 5.0}
    assert delta({"a": 5, "b": 2, "c": 1}, {"a": 2, "b": 2}) == {"a": 3, "c": 1}


def db_metrics(*samples: tuple[str, str, str, float, float]) -> str:
    """A service's /metrics with ``(command, collection, outcome, seconds, calls)`` samples of
    cityhelp_db_command_seconds, buckets and other metrics around them."""
    lines = [
        "# HELP cityhelp_db_command_seconds Time a database command took",
        "# TYPE cityhelp_db_command_seconds histogram",
        'cityhelp_messages_processed_total{service="route",topic="t",outcome="ok"} 1000.0',
    ]
    for command, collection, outcome, seconds, calls in samples:
        labels = f'collection="{collection}",command="{command}",outcome="{outcome}"'
        lines += [
            f'cityhelp_db_command_seconds_bucket{{{labels},le="0.005"}} {calls}',
            f"cityhelp_db_command_seconds_count{{{labels}}} {calls}",
            f"cityhelp_db_command_seconds_sum{{{labels}}} {seconds}",
            f"cityhelp_db_command_seconds_created{{{labels}}} 1.7e9",
        ]
    return "\n".join(lines) + "\n"


def test_database_time_per_request_by_service_command_and_collection() -> None:
    before = {
        "route": db_command_totals(
            db_metrics(("insert", "legs", "ok", 0.5, 10), ("find", "teams", "ok", 0.1, 2))
        ),
        "verify": db_command_totals(db_metrics(("find", "requests", "ok", 0.0, 0))),
    }
    after = {
        "route": db_command_totals(
            db_metrics(
                ("insert", "legs", "ok", 2.5, 110),
                ("insert", "legs", "error", 0.5, 10),  # outcomes add up
                ("find", "teams", "ok", 0.1, 2),  # not called during the step: left out
            )
        ),
        "verify": db_command_totals(
            db_metrics(("find", "requests", "ok", 6.0, 300), ("update", "checks", "ok", 1.0, 50))
        ),
        "notify": db_command_totals(db_metrics(("insert", "deliveries", "ok", 2.5, 100))),
    }
    assert after["route"][("insert", "legs")] == (3.0, 120.0)
    rows = db_time(after, before, requests=100)
    assert rows == [
        DbTime("verify", "find", "requests", 60.0, 3.0, 20.0),
        DbTime("notify", "insert", "deliveries", 25.0, 1.0, 25.0),
        DbTime("route", "insert", "legs", 25.0, 1.1, 2500 / 110),
        DbTime("verify", "update", "checks", 10.0, 0.5, 20.0),
    ]
    assert db_time(after, before, requests=0) == []


def test_summary_line_has_the_exact_form() -> None:
    line = summary_line(
        Summary(
            e2e_per_s=26.7,
            accept_per_s=108.4,
            p99_dispatch_ms_at_1000=17268.4,
            p1_p99_ms_under_backlog=None,
            lost=448,
            kafka_produce_per_s=11429.2,
            db_insert_per_s=5361.0,
            max_rss_mb=86.8,
        )
    )
    assert line == (
        "bench: e2e_per_s=27 accept_per_s=108 p99_dispatch_ms_at_1000=17268 "
        "p1_p99_ms_under_backlog=-1 lost=448 kafka_produce_per_s=11429 db_insert_per_s=5361 "
        "max_rss_mb=87"
    )


def test_headline_step_is_1000_when_held_else_the_highest_held() -> None:
    assert held(1000, 995, 990, 0)
    assert not held(1000, 995, 990, 1)  # something lost
    assert not held(1000, 995, 800, 0)  # not carried end to end
    assert not held(None, 995, 990, 0)  # saturation is never "held"
    steps = [(250.0, True), (500.0, True), (1000.0, True), (2000.0, False), (None, False)]
    assert step_for_headline(steps) == 2
    steps = [(250.0, True), (500.0, True), (1000.0, False), (2000.0, False), (None, False)]
    assert step_for_headline(steps) == 1
    steps = [(500.0, False), (250.0, False), (None, False)]
    assert step_for_headline(steps) == 1  # none held: the lowest offered step
    assert step_for_headline([(None, False)]) is None


def test_outcomes_count_decided_apart_from_lost() -> None:
    tracks = {
        "a": Track(submit_ms=1000, dispatch_ms=1100, notify_ms=1050, outcome="verified", records=6),
        "b": Track(submit_ms=2000, dispatch_ms=2300, outcome="verified", records=4),
        "c": Track(submit_ms=3000, outcome="needs_review", notify_ms=3500),
        "d": Track(submit_ms=4000, outcome="duplicate"),
        "e": Track(submit_ms=5000, outcome="verified"),  # verified, never dispatched
        "f": Track(submit_ms=6000, dead_lettered=True),
        "noise": Track(dispatch_ms=10),  # never seen on the submitted topics
    }
    o = outcomes(tracks, None, end_ms=10_000)
    assert (o.accepted, o.dispatched, o.needs_review, o.rejected) == (6, 2, 1, 1)
    assert (o.lost, o.dead_lettered) == (2, 1)
    # dispatch latencies: 100, 300 and censored 5000 (e), 4000 (f); review/duplicate excluded
    assert o.dispatch["p50"] == Quantile(300)
    assert o.dispatch["p99"] == Quantile(5000, censored=True)
    # notifications: 50 (a), 500 (c), then censored 4000 (f), 5000 (e), 6000 (d), 8000 (b)
    assert o.notify["p50"] == Quantile(4000, censored=True)
    assert o.notify["p95"] == Quantile(8000, censored=True)
    assert o.records_per_request == 5
    assert o.accept_per_s == pytest.approx(6 / 5)
    assert o.e2e_per_s == pytest.approx(2 / 1.3)
    only = outcomes(tracks, {"a", "c"}, end_ms=10_000)
    assert (only.accepted, only.dispatched, only.needs_review, only.lost) == (2, 1, 1, 0)


def test_the_highest_step_is_max_else_the_highest_rate() -> None:
    assert highest_step([250.0, None, 1000.0]) == 1
    assert highest_step([1000.0, 250.0, 2000.0, 500.0]) == 2
    assert highest_step([None, None]) == 0
    assert highest_step([]) is None


def test_per_second_buckets() -> None:
    assert per_second([1000, 1999, 2000, 4500, 99_000, 500], 1000, 4) == [2, 1, 0, 1]


def test_table_and_wrk_output() -> None:
    lines = table(["step", "rate"], [["250/s", 249.6], ["max", None], ["x", 0.5]])
    assert lines == [
        "step    rate",
        "-----  -----",
        "250/s    250",
        "max        -",
        "x      0.500",
    ]
    counts = parse_wrk_output('Running 10s\nBENCH_JSON {"accepted":574,"timeouts":0}\n')
    assert counts == {"accepted": 574, "timeouts": 0}
    assert parse_wrk_output("wrk: connection refused") == {}
    assert connections_for(1000, 2) == 500
    assert connections_for(2000, 2) == 512
    assert connections_for(None, 2) == 64
    assert connections_for(15, 4) == 16


def test_proc_parsing() -> None:
    stat = "1234 (python -m x) S 77 2 3 4 5 6 7 8 9 10 250 150 30 20 20 0 1 0 100 0 0"
    assert parse_stat_cpu(stat) == pytest.approx(450 / os.sysconf("SC_CLK_TCK"))
    assert parse_ppid(stat) == 77
    assert parse_vm_hwm_mb("Name:\tpython\nVmHWM:\t   2048 kB\nVmRSS: 1024 kB\n") == 2.0


def test_bodies_are_distinct_and_p1_is_green_channel() -> None:
    a, b = bodies.p3_body(1), bodies.p3_body(2)
    assert a["contact"]["phone"] != b["contact"]["phone"]
    assert a["description"] != b["description"]
    assert bodies.phone(12) == "13900000012"
    p1 = bodies.p1_body(3)
    assert p1["special_groups"] == ["pregnant"]
    assert "临产" in p1["description"]
    assert 400 < bodies.record_size(5) < 1200


def test_the_watch_times_a_request_at_verify_and_the_report_splits_the_p1_wait() -> None:
    def record(ts: int) -> ConsumerRecord[bytes, bytes]:
        return ConsumerRecord("t", 0, 0, ts, 0, b"r-1", b"{}", None, 2, 2, [])

    seen = Observed()
    seen.add(VERIFIED[-1], record(1_500))
    seen.add(VERIFIED[0], record(1_200))
    assert seen.tracks["r-1"].verify_ms == 1_200, "the first verified record counts"
    no = outcomes({}, set(), 0.0)
    backlog = BacklogResult(
        backlog=10,
        produce_s=1.0,
        p1_sent=2,
        p1=no,
        p3=no,
        waited_s=1.0,
        p1_dispatch_ms=[300.0, 900.0],
        p1_verify_ms=[100.0, 700.0],
        p1_route_ms=[200.0, 200.0],
    )
    run = Run(args={}, record_size=600, partitions=6, backlog=backlog)
    text = "\n".join(lines(run))
    assert "P1 submit→verified p50/p99 100/700 ms, verified→dispatched 200/200 ms" in text
