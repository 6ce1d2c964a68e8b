"""What an SRE and a department's system see, with their own tools, on the real pipeline.

- A real Prometheus server (Debian's ``prometheus``) scrapes the four services; PromQL through its
  HTTP API counts the requests submitted, sees the consumer lag, runs every dashboard query and
  loads the alert rules.
- kcat (a C Kafka client, Debian's ``kcat``) reads a dispatch topic as a department would and
  checks the records against the published JSON Schema, then reports a status the pipeline
  applies.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import TopicPartition
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from prometheus_client import REGISTRY
from pymongo import AsyncMongoClient

from shared.envelope import new_id
from shared.lag import LagCollector, Subscription, client_options
from shared.settings import ServiceSettings
from shared.topics import Topic, load_partitions
from tests.conftest import make_services
from tests.support.journey import EXAMPLE
from tests.support.kafka import wait_until
from tests.support.services import SERVICES, ServiceSet, free_port, wait_http_ready

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
CONTRACTS = REPO / "contracts"
ALERTS = REPO / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "cityhelp.json"
INSTALL_HINT = "run deploy/local/tools.sh (apt-get install prometheus kcat), which `make test` does"


def tool(name: str) -> str:
    exe = shutil.which(name)
    if exe is None:
        pytest.fail(f"{name} is not installed: {INSTALL_HINT}", pytrace=False)
    return exe


@pytest.fixture(scope="module")
async def services(kafka_bootstrap: str, mongodb_uri: str) -> AsyncIterator[ServiceSet]:
    """The four services, measuring their consumer lag every second."""
    lag_every_second = {f"{s.upper()}_LAG_INTERVAL_SECONDS": "1" for s in SERVICES}
    service_set = await make_services(kafka_bootstrap, mongodb_uri, **lag_every_second)
    with service_set.running():
        yield service_set


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url

    def query(self, promql: str) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=10)
        body = response.json()
        assert body["status"] == "success", f"{promql}: {body}"
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def scalar(self, promql: str) -> float | None:
        result = self.query(promql)
        return float(result[0]["value"][1]) if result else None


@pytest.fixture(scope="module")
def prometheus(
    services: ServiceSet, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Prometheus]:
    """A Prometheus server scraping the four services every second, with the alert rules."""
    exe = tool("prometheus")
    work = tmp_path_factory.mktemp("prometheus")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(ALERTS)],
        "scrape_configs": [
            {
                "job_name": service,
                "static_configs": [{"targets": [f"127.0.0.1:{services.port(service)}"]}],
            }
            for service in SERVICES
        ],
    }
    config_file = work / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config))
    checked = subprocess.run(
        [tool("promtool"), "check", "config", str(config_file)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    port = free_port()
    log = (work / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            exe,
            f"--config.file={config_file}",
            f"--storage.tsdb.path={work / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server = Prometheus(f"http://127.0.0.1:{port}")
    try:
        wait_http_ready(
            "prometheus",
            proc,
            f"{server.url}/-/ready",
            timeout=60,
            detail=(work / "prometheus.log").read_text,
        )
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


async def test_prometheus_counts_the_submitted_requests_and_sees_the_lag(
    services: ServiceSet, prometheus: Prometheus
) -> None:
    n = 6
    ordinary = {
        **EXAMPLE,
        "category": "food_supply",
        "description": "家里没有菜了",
        "special_groups": [],
    }
    async with httpx.AsyncClient(base_url=services.url("intake")) as http:
        for i in range(n):
            # half green-channel (the priority lane), half ordinary
            body = EXAMPLE if i % 2 else ordinary
            response = await http.post(
                "/v1/requests",
                json={
                    **body,
                    "description": f"{body['description']} #{i}",
                    "contact": {"phone": f"139 0037 10{i:02d}"},
                },
                headers={"Idempotency-Key": f"observability-{services.prefix}{i}"},
            )
            assert response.status_code == 202, response.text

    def all_up() -> bool:
        return prometheus.scalar('sum(up{job=~"intake|verify|route|notify"})') == len(SERVICES)

    await wait_until(all_up, timeout=30)

    received = 'sum(cityhelp_requests_total{step="received"})'

    def counted() -> bool:
        return (prometheus.scalar(received) or 0) >= n

    await wait_until(counted, timeout=60)
    assert prometheus.scalar(received) == n

    # verify consumed them: verify processed n records from its two input topics (one consumer
    # group per lane), and its lag there, measured by verify itself, covers every partition of
    # both and is zero.
    def processed() -> bool:
        count = prometheus.scalar(
            "sum(cityhelp_messages_processed_total"
            '{job="verify",topic=~"help.requests.submitted(.priority)?"})'
        )
        return (count or 0) >= n

    await wait_until(processed, timeout=60)
    sizes = load_partitions(REPO / "config" / "topics.toml")
    partitions = sizes[Topic.SUBMITTED][0] + sizes[Topic.SUBMITTED_PRIORITY][0]
    lag = 'cityhelp_consumer_lag{job="verify",topic=~"help.requests.submitted(.priority)?"}'

    def caught_up() -> bool:
        series = prometheus.query(lag)
        return len(series) == partitions and all(float(s["value"][1]) == 0 for s in series)

    await wait_until(caught_up, timeout=60)


async def test_every_dashboard_query_runs_and_the_alert_rules_load(
    services: ServiceSet, prometheus: Prometheus
) -> None:
    checked = subprocess.run(
        [tool("promtool"), "check", "rules", str(ALERTS)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr

    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    assert exprs
    for expr in exprs:
        for variable, value in {"$__rate_interval": "1m", "$__range": "1h"}.items():
            expr = expr.replace(variable, value)
        prometheus.query(expr)  # asserts the server accepted it

    names = {
        rule["alert"]
        for group in yaml.safe_load(ALERTS.read_text())["groups"]
        for rule in group["rules"]
    }

    def rules_evaluated() -> list[dict[str, Any]] | None:
        body = httpx.get(f"{prometheus.url}/api/v1/rules", timeout=10).json()
        rules = [r for g in body["data"]["groups"] for r in g["rules"]]
        return rules if rules and all(r["health"] == "ok" for r in rules) else None

    rules = await wait_until(rules_evaluated, timeout=30)
    assert {r["name"] for r in rules} == names
    firing = {r["name"] for r in rules if r["state"] == "firing"}
    assert not firing & {"ServiceDown", "StageHalted"}


def kcat_read(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    """Every record on ``topic`` as kcat's JSON envelope (key, headers, payload)."""
    result = subprocess.run(
        [tool("kcat"), "-C", "-b", bootstrap, "-t", topic, "-o", "beginning", "-e", "-J", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def headers_of(record: dict[str, Any]) -> dict[str, str]:
    flat = record.get("headers") or []
    return dict(zip(flat[0::2], flat[1::2], strict=True))


def published_schema(topic: Topic) -> Draft202012Validator:
    schema = json.loads((CONTRACTS / "schemas" / f"{topic.value}.schema.json").read_text())
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


async def test_a_department_reads_its_dispatch_topic_and_reports_status_with_kcat(
    services: ServiceSet, kafka_bootstrap: str, mongo: AsyncMongoClient[dict[str, Any]]
) -> None:
    async with httpx.AsyncClient(base_url=services.url("intake")) as http:
        response = await http.post(
            "/v1/requests", json={**EXAMPLE, "contact": {"phone": "137 0037 1999"}}
        )
    assert response.status_code == 202, response.text
    request_id = response.json()["request_id"]

    dispatch = services.prefix + Topic.DISPATCH_MEDICAL.value

    async def dispatched() -> list[dict[str, Any]]:
        records = await asyncio.to_thread(kcat_read, kafka_bootstrap, dispatch)
        return [r for r in records if r["key"] == request_id]

    mine = await wait_until(dispatched, timeout=60, every=1.0)
    asyncapi = json.loads((CONTRACTS / "asyncapi.json").read_text())
    ce_headers = Draft202012Validator(
        asyncapi["components"]["schemas"]["CloudEventsHeaders"],
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )
    all_records = await asyncio.to_thread(kcat_read, kafka_bootstrap, dispatch)
    schema = published_schema(Topic.DISPATCH_MEDICAL)
    for record in all_records:  # every record on the topic, not only ours
        schema.validate(json.loads(record["payload"]))
        ce_headers.validate(headers_of(record))
    job = json.loads(mine[0]["payload"])
    assert job["request_id"] == request_id
    assert job["department"] == "medical"
    assert headers_of(mine[0])["ce_subject"] == request_id

    event_id = f"medical-{new_id()}"
    status = {
        "event_id": event_id,
        "request_id": request_id,
        "department": "medical",
        "status": "acknowledged",
        "leg_id": job["leg_id"],
        "note": "team on the way",
        "actor": "medical-team-7",
        "occurred_at": "2026-01-09T14:05:00+08:00",
    }
    published_schema(Topic.STATUS).validate(status)
    headers = {
        "ce_id": event_id,
        "ce_type": "city.help.department.status.v1",
        "ce_source": "departments/medical",
        "ce_specversion": "1.0",
        "ce_time": "2026-01-09T14:05:00+08:00",
        "ce_subject": request_id,
        "content-type": "application/json",
    }
    command = [tool("kcat"), "-P", "-b", kafka_bootstrap, "-t", services.prefix + "help.status"]
    command += ["-k", request_id]
    for name, value in headers.items():
        command += ["-H", f"{name}={value}"]
    produced = await asyncio.to_thread(
        subprocess.run,
        command,
        input=json.dumps(status, ensure_ascii=False) + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert produced.returncode == 0, produced.stderr

    db = mongo[services.database]

    async def acknowledged() -> dict[str, Any] | None:
        return await db["requests"].find_one({"_id": request_id, "status": "acknowledged"})

    doc = await wait_until(acknowledged, timeout=60)
    assert "acknowledged" in [t["status"] for t in doc["timeline"]]
    dead = await asyncio.to_thread(
        kcat_read, kafka_bootstrap, services.prefix + Topic.DLQ_ROUTE.value
    )
    assert [r for r in dead if r["key"] == request_id] == []


async def test_lag_is_what_a_group_has_not_committed(kafka_bootstrap: str) -> None:
    """shared.lag on the real broker: a group that committed nothing is behind by every record;
    after it commits some, by the rest; records on other topics do not count."""
    prefix = f"lag{new_id()[:8]}."
    settings = ServiceSettings(KAFKA_BOOTSTRAP=kafka_bootstrap, TOPIC_PREFIX=prefix)
    topic = prefix + Topic.SUBMITTED.value
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    await admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    producer = AIOKafkaProducer(**client_options(settings))
    await producer.start()
    try:
        for i in range(5):
            await producer.send_and_wait(topic, b"{}", key=f"k{i}".encode(), partition=i % 2)
    finally:
        await producer.stop()
    group = prefix + "cityhelp-verify"
    collector = LagCollector(
        settings, [Subscription(group=group, topics=(topic,))], service="verify", interval=1
    )
    consumer = AIOKafkaConsumer(group_id=None, **client_options(settings))
    await consumer.start()
    committer = AIOKafkaConsumer(
        group_id=group, enable_auto_commit=False, **client_options(settings)
    )
    await committer.start()
    committer.assign([TopicPartition(topic, 0), TopicPartition(topic, 1)])
    try:
        lag = await collector.collect(admin, consumer)
        assert lag == {
            ("cityhelp-verify", "help.requests.submitted", 0): 3,
            ("cityhelp-verify", "help.requests.submitted", 1): 2,
        }
        await committer.commit({TopicPartition(topic, 0): 2})
        lag = await collector.collect(admin, consumer)
        assert lag[("cityhelp-verify", "help.requests.submitted", 0)] == 1
        assert lag[("cityhelp-verify", "help.requests.submitted", 1)] == 2
        sample = REGISTRY.get_sample_value(
            "cityhelp_consumer_lag",
            {"group": "cityhelp-verify", "topic": "help.requests.submitted", "partition": "0"},
        )
        assert sample == 1
    finally:
        await committer.stop()
        await consumer.stop()
        await admin.delete_topics([topic])
        await admin.close()
