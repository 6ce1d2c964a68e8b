"""The pure parts of ``python -m tests.bench.verify_stage``: the records it publishes (as intake
publishes them, on intake's lane) and its figures per collection."""

from __future__ import annotations

from services.intake.domain import lane_for, load_rules
from shared.envelope import Envelope
from shared.kafka import effect_id
from shared.schemas import SubmittedRequest
from shared.settings import CONFIG_DIR
from shared.topics import Topic
from tests.bench.stage_run import Drained
from tests.bench.verify_stage import (
    P1_EVERY,
    bench_records,
    collection_line,
    per_collection,
    submissions,
)


def test_records_are_what_intake_publishes_on_its_lane() -> None:
    items = submissions(2 * P1_EVERY, seed="s")
    records = list(bench_records("p.", items))
    assert len(records) == len(items) == 2 * P1_EVERY
    assert len({value.request_id for _, value in items}) == len(items)
    rules = load_rules(CONFIG_DIR / "intake.toml")
    for (lane, value), (topic, raw, key, headers) in zip(items, records, strict=True):
        assert lane == lane_for(value.request, rules)
        assert topic == "p." + lane.value
        assert key == value.request_id.encode()
        assert SubmittedRequest.model_validate_json(raw) == value
        envelope = Envelope.from_headers({k: v.decode() for k, v in headers})
        assert envelope is not None
        assert envelope.id == effect_id("submitted", value.request_id)
    lanes = [lane for lane, _ in items]
    assert lanes.count(Topic.SUBMITTED_PRIORITY) == 2
    assert lanes.count(Topic.SUBMITTED) == 2 * P1_EVERY - 2


def test_figures_per_collection_and_request() -> None:
    drained = Drained(
        records=100,
        finished=100,
        seconds=1.0,
        cpu_s=0.1,
        writes={"insert:verify_decisions": 4, "insert:requests": 4, "update:requests": 2},
        inserted={"verify_decisions": 100, "verify_history": 100, "review": 0},
    )
    table = per_collection(drained, 100)
    assert table == {
        "requests": {"insert": 0.04, "update": 0.02},
        "verify_decisions": {"insert": 0.04, "documents": 1.0},
        "verify_history": {"documents": 1.0},
    }
    assert collection_line(table) == (
        "requests[insert=0.040,update=0.020]"
        " verify_decisions[documents=1.000,insert=0.040] verify_history[documents=1.000]"
    )
