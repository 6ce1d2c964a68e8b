"""The database benchmark's pure helpers: document size, percentiles, its tables."""

from __future__ import annotations

import bson
import pytest

from tools.dbbench_results import (
    PhaseResult,
    format_comparison,
    format_table,
    make_doc,
    percentile,
    rate_cell,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("size", [512, 1024, 4096])
def test_documents_have_the_asked_bson_size(size: int) -> None:
    doc = make_doc("m-17", 17, size)
    assert len(bson.encode(doc)) == size
    assert doc["_id"] == "m-17"
    assert doc["seq"] == 17


def test_percentile_by_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([3.0], 99) == 3.0
    assert percentile([], 50) == 0.0


def test_rate_is_documents_over_seconds() -> None:
    result = PhaseResult("insert_one", calls=10, docs=1000, seconds=2.0)
    assert result.rate == 500.0
    assert PhaseResult("empty").rate == 0.0


def test_a_hung_phase_says_so() -> None:
    hung = PhaseResult("bulk_write", hung=True, note="a call made no progress in 20 s")
    assert rate_cell(hung.summary()) == "hung"
    late = PhaseResult("bulk_write", calls=3, docs=150, seconds=1.0, hung=True)
    assert rate_cell(late.summary()) == "150 (then hung)"
    table = format_table([hung.summary()])
    assert "hung" in table
    assert "no progress in 20 s" in table


def test_comparison_has_a_row_per_phase_and_a_column_per_run() -> None:
    one = PhaseResult("insert_one", calls=1, docs=480, seconds=1.0).summary()
    bulk = PhaseResult("bulk_write", hung=True).summary()
    runs = [
        {"label": "sqlite", "results": [one, bulk]},
        {"label": "postgresql", "results": [one]},
    ]
    lines = format_comparison(runs).splitlines()
    assert lines[0] == "| phase | sqlite | postgresql |"
    assert lines[2] == "| insert_one (docs/s) | 480 | 480 |"
    assert lines[3] == "| bulk_write (docs/s) | hung | - |"
