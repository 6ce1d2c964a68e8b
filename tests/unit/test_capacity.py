"""The capacity model (tools/capacity.py): replicas, partitions, cores and lag thresholds from
measured CPU per request, on small inputs whose answers are worked out by hand here."""

from __future__ import annotations

from typing import Any

import pytest

from tools import capacity
from tools.capacity import Measured, plan, round_up

pytestmark = pytest.mark.unit

STAGES = {"intake": 4.0, "verify": 2.0, "route": 1.0, "notify": 8.0}


def inputs(**policy: Any) -> dict[str, Any]:
    return {
        "target": {"requests_per_s": 1000, "brokers": 3, "replication_factor": 3,
                   "min_insync_replicas": 2},
        "policy": {"utilisation": 0.5, "cores_per_replica": 1.0, "surge_factor": 2.0,
                   "lag_target_seconds": 5, "min_replicas": 2, "http_stages": ["intake"]}
        | policy,
        "topic_share": {"lane": 0.25},
    }  # fmt: skip


def measured(**cpu: float) -> Measured:
    return Measured(
        source="hand-made",
        cpu_ms_per_request=STAGES | cpu,
        rss_mb=dict.fromkeys(STAGES, 100.0),
        kafka_produce_per_s=20_000,
        kafka_bench_cores=2,
        topic_records_per_request=5,
        db_writes_per_request=10,
        record_bytes=500,
    )


CONSUMERS = {
    "intake": [("g-intake", ["partner"])],
    "verify": [("g-verify", ["submitted"]), ("g-verify-lane", ["lane"])],
    "route": [("g-route", ["verified"])],
    "notify": [("g-notify", ["submitted", "verified"])],
}
TOPICS = ["partner", "submitted", "lane", "verified", "notifications"]


def test_round_up_to_the_broker_count() -> None:
    assert [round_up(v, 3) for v in (0, 1, 3, 4, 9.5)] == [3, 3, 3, 6, 12]


def test_a_stage_gets_the_replicas_its_cpu_per_request_needs() -> None:
    p = plan(inputs(), measured(), CONSUMERS, TOPICS)
    verify = p.stages["verify"]
    # 2 ms a request, half a core planned: 250 requests/s a replica; 1000/s needs 4
    assert verify.replica_rate == 250
    assert (verify.replicas, verify.cores, verify.busy_cores) == (4, 4.0, 2.0)
    assert verify.lag_threshold == 1250  # 5 s of one replica's work
    # notify: 8 ms, 62.5/s a replica, 16 replicas, 32 in a surge
    assert p.stages["notify"].replicas == 16
    # route: 1 ms, 500/s a replica: 2 would do, and 2 is the floor anyway
    assert p.stages["route"].replicas == 2


def test_a_topic_has_partitions_for_the_largest_surge_of_its_readers() -> None:
    p = plan(inputs(), measured(), CONSUMERS, TOPICS)
    # submitted is read by verify (8 in a surge) and notify (32): 33, a multiple of 3
    assert p.partitions["submitted"] == 33
    assert p.partitions["verified"] == 33
    # a lane carrying a quarter of the rate: ceil(8 x 0.25) = 2, at least one per broker
    assert p.partitions["lane"] == 3
    # written, never read by a stage: one per broker
    assert p.partitions["notifications"] == 3
    # the ceiling of useful replicas is the stage's largest input
    assert p.stages["verify"].max_replicas == 33
    assert p.stages["route"].max_replicas == 33


def test_a_stage_fed_by_http_may_scale_past_its_topics() -> None:
    p = plan(inputs(), measured(), CONSUMERS, TOPICS)
    # intake: 4 ms, 125/s a replica, 8 replicas, 16 in a surge; partner read by intake only
    assert p.partitions["partner"] == 18
    assert p.stages["intake"].max_replicas == 18
    p = plan(inputs(http_stages=[]), measured(intake=40.0), CONSUMERS, TOPICS)
    assert p.stages["intake"].replicas == 80
    assert p.stages["intake"].max_replicas == 162  # round_up(160, 3) from its only topic


def test_the_floor_and_the_utilisation_bound() -> None:
    p = plan(inputs(min_replicas=5), measured(), CONSUMERS, TOPICS)
    assert p.stages["route"].replicas == 5
    with pytest.raises(ValueError, match="utilisation"):
        plan(inputs(utilisation=1.5), measured(), CONSUMERS, TOPICS)


def test_the_brokers_and_the_database() -> None:
    p = plan(inputs(), measured(), CONSUMERS, TOPICS)
    # 1000 x 5 records, each on 3 of 3 brokers: 5000 records/s on each broker, 2.5 MB/s;
    # 10,000 records/s per core measured, half a core planned: 1 core
    assert p.broker_records_per_s == 5000
    assert p.broker_mb_per_s == 2.5
    assert p.broker_cores == 1
    assert p.db_writes_per_s == 10_000


def test_figures_of_a_bench_run_replace_the_defaults() -> None:
    def step(label: str, accepted: int, drained: bool, cpu: float) -> dict[str, Any]:
        return {
            "label": label,
            "drained": drained,
            "outcomes": {"accepted": accepted},
            "cpu_s": {"intake": cpu, "notify": cpu * 4},
        }

    results = {
        "steps": [step("250", 1000, True, 2.0), step("1000", 4000, True, 6.0),
                  step("max", 9000, False, 30.0)],
        "processes": {"verify": {"rss_peak_mb": 90.5}},
        "ratios": {"topic_records_per_request": 4.4},
        "ceilings": {"kafka": {"produce_per_s": 30_000}},
        "cpus": 2,
        "record_size": 600,
    }  # fmt: skip
    found = capacity.measured_from_results(results, measured())
    # the drained step with the most requests: 6 s / 4000 = 1.5 ms, notify 6 ms
    assert found.cpu_ms_per_request == STAGES | {"intake": 1.5, "notify": 6.0}
    assert found.rss_mb["verify"] == 90.5
    assert (found.topic_records_per_request, found.db_writes_per_request) == (4.4, 10)
    assert (found.kafka_produce_per_s, found.record_bytes) == (30_000, 600)
    assert "step 1000" in found.source
    assert capacity.measured_from_results({"steps": []}, measured()) == measured()


def test_the_report_is_a_table_of_the_plan() -> None:
    p = plan(inputs(), measured(), CONSUMERS, TOPICS)
    text = "\n".join(capacity.report(p, inputs()))
    assert "| verify | 2.00 | 250 | 4 | 4.00 | 2.00 | 33 | 1250 | 100 |" in text
    assert "| 33 | submitted, verified |" in text
    assert "5,000 records/s" in text
