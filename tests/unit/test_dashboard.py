"""The Grafana dashboard and the alert rules query only metrics the services really export.

The exported names are read the way Prometheus reads them: the ``/metrics`` page of each of the
four apps, built with ``build_app`` but not started (no lifespan, so nothing connects). That
includes the FastStream middleware's metrics, which register when the broker is built.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from services.intake.app import build_app as build_intake
from services.intake.settings import IntakeSettings
from services.notify.app import build_app as build_notify
from services.notify.settings import NotifySettings
from services.route.app import build_app as build_route
from services.route.settings import RouteSettings
from services.verify.app import build_app as build_verify
from services.verify.settings import VerifySettings

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy" / "grafana" / "cityhelp.json"
ALERTS = REPO / "deploy" / "prometheus" / "alerts.yml"
STAGES = ("intake", "verify", "route", "notify")
# Series Prometheus itself adds to every scrape.
PROMETHEUS_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
# Sample names a metric family of each type exposes.
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("_sum", "_count", "_created", ""),
    "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
    "info": ("_info",),
    "stateset": ("",),
    "gauge": ("",),
    "unknown": ("",),
}
_GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__range": "1h", "$__interval": "1m"}
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset"}
_KEYWORDS |= {"and", "or", "unless", "inf", "nan"}


def exported_metric_names() -> set[str]:
    """Every sample name the four services expose on /metrics."""
    apps = [
        build_intake(IntakeSettings(TOPIC_PREFIX=""), create_topics=False),
        build_verify(VerifySettings(TOPIC_PREFIX=""), create_topics=False),
        build_route(RouteSettings(TOPIC_PREFIX=""), create_topics=False),
        build_notify(NotifySettings(TOPIC_PREFIX=""), create_topics=False),
    ]
    names: set[str] = set()
    for app in apps:
        response = TestClient(app).get("/metrics")  # no `with`: the lifespan does not run
        assert response.status_code == 200
        for family in text_string_to_metric_families(response.text):
            names.update(f"{family.name}{suffix}" for suffix in SUFFIXES[family.type])
            names.update(sample.name for sample in family.samples)
    return names


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects."""
    for variable, value in _GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges
    expr = re.sub(
        r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr
    )  # grouping labels
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", expr):
        following = expr[match.end() :].lstrip()
        if following.startswith("("):
            continue  # a function or aggregation
        if match.group(0).lower() in _KEYWORDS:
            continue
        names.add(match.group(0))
    return names


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return data


def panels(data: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in data["panels"]:
        yield panel
        yield from panel.get("panels", [])


def dashboard_exprs() -> list[str]:
    return [t["expr"] for p in panels(dashboard()) for t in p.get("targets", [])]


def alert_exprs() -> list[str]:
    data = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    return [str(rule["expr"]) for group in data["groups"] for rule in group["rules"]]


@pytest.fixture(scope="module")
def exported() -> set[str]:
    return exported_metric_names()


def test_metric_name_extraction() -> None:
    assert metric_names(
        'histogram_quantile(0.95, sum by (le, topic) (rate(a_bucket{service="x",le!="+Inf"}'
        "[$__rate_interval]))) / on (job) group_left b_total > bool 0 unless c"
    ) == {"a_bucket", "b_total", "c"}


def test_the_services_export_the_contract_metrics(exported: set[str]) -> None:
    assert {
        "cityhelp_requests_total",
        "cityhelp_consumer_lag",
        "cityhelp_processing_seconds_bucket",
        "cityhelp_notifications_total",
        "cityhelp_sla_breaches_total",
        "cityhelp_review_queue_depth",
        "cityhelp_published_records_total",
    } <= exported


def test_intakes_published_records_are_read_from_its_own_counter() -> None:
    """Intake hands its records to the producer itself, past FastStream's publish metrics."""
    data = dashboard()
    panel = next(p for p in panels(data) if p.get("title") == "intake: records published")
    assert [metric_names(t["expr"]) for t in panel["targets"]] == [
        {"cityhelp_published_records_total"}
    ]
    assert 'service="intake"' in panel["targets"][0]["expr"]
    assert not any(
        "faststream_published_messages_total" in e and "intake" in e for e in dashboard_exprs()
    )


def test_every_dashboard_query_uses_exported_metrics(exported: set[str]) -> None:
    exprs = dashboard_exprs()
    used = set().union(*(metric_names(e) for e in exprs))
    assert len(used) >= 10
    unknown = {name for name in used if name not in exported | PROMETHEUS_SERIES}
    assert unknown == set(), f"the dashboard queries metrics no service exports: {unknown}"


def test_every_alert_uses_exported_metrics(exported: set[str]) -> None:
    used = set().union(*(metric_names(e) for e in alert_exprs()))
    unknown = {name for name in used if name not in exported | PROMETHEUS_SERIES}
    assert unknown == set(), f"alerts query metrics no service exports: {unknown}"


def test_a_row_per_stage_with_throughput_latency_lag_and_errors() -> None:
    data = dashboard()
    rows: dict[str, list[dict[str, Any]]] = {}
    current = ""
    for panel in data["panels"]:
        if panel["type"] == "row":
            current = panel["title"]
            rows[current] = []
        else:
            rows[current].append(panel)
    for stage in STAGES:
        stage_panels = rows[f"Stage: {stage}"]
        text = " ".join(t["expr"] for p in stage_panels for t in p["targets"])
        assert f'rate(cityhelp_messages_processed_total{{service="{stage}"}}' in text
        assert f'cityhelp_processing_seconds_bucket{{service="{stage}"}}' in text
        assert f'cityhelp_consumer_lag{{job="{stage}"}}' in text
        assert f'cityhelp_dead_letters_total{{service="{stage}"}}' in text


def test_command_centre_totals_by_step_category_and_district() -> None:
    rows = [p for p in dashboard()["panels"] if p["type"] == "row"]
    assert rows[0]["title"] == "Command centre"
    exprs = dashboard_exprs()
    for step in ("received", "verified", "dispatched", "resolved"):
        for label in ("category", "district"):
            wanted = f'sum by ({label}) (increase(cityhelp_requests_total{{step="{step}"}}'
            assert any(e.startswith(wanted) for e in exprs), wanted


def test_panels_use_the_datasource_variable() -> None:
    data = dashboard()
    assert [v["name"] for v in data["templating"]["list"]] == ["datasource"]
    ids = [p["id"] for p in panels(data)]
    assert len(ids) == len(set(ids))
    for panel in panels(data):
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
