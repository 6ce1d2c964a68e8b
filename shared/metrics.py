"""Prometheus metrics shared by the four services.

Metric names are a closed set defined here, so a typo fails at import or type checking.
Labels never carry personal data: only services, topics, categories, priorities, districts,
departments, channels and outcome codes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Literal

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

NAMESPACE = "cityhelp"
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
Labels = Sequence[str]
GaugeMode = Literal["max", "livesum"]


def _counter(name: str, documentation: str, labels: Labels = ()) -> Counter:
    return Counter(name, documentation, labels, namespace=NAMESPACE)


def _gauge(
    name: str, documentation: str, labels: Labels = (), *, multiprocess_mode: GaugeMode = "max"
) -> Gauge:
    """A gauge; with several workers (MULTIPROCESS_DIR) the largest worker's value unless
    ``multiprocess_mode`` says otherwise: each worker measures the same value."""
    return Gauge(
        name, documentation, labels, namespace=NAMESPACE, multiprocess_mode=multiprocess_mode
    )


def _histogram(
    name: str,
    documentation: str,
    labels: Labels = (),
    *,
    buckets: Sequence[float] = _LATENCY_BUCKETS,
) -> Histogram:
    """A histogram of seconds, unless ``buckets`` says otherwise."""
    return Histogram(name, documentation, labels, namespace=NAMESPACE, buckets=buckets)


MESSAGES_RECEIVED = _counter(
    "messages_received_total",
    "Records a stage received from an input topic.",
    ["service", "topic"],
)
MESSAGES_PROCESSED = _counter(
    "messages_processed_total",
    "Records a stage finished, by outcome (ok, dead_lettered).",
    ["service", "topic", "outcome"],
)
MESSAGES_FAILED = _counter(
    "messages_failed_total",
    "Transient failures (retried without advancing the offset), by error kind.",
    ["service", "topic", "error"],
)
DEAD_LETTERS = _counter(
    "dead_letters_total",
    "Records sent to the service's dead-letter topic, by reason code.",
    ["service", "topic", "reason"],
)
PROCESSING_SECONDS = _histogram(
    "processing_seconds",
    "Time a stage spent on one record.",
    ["service", "topic"],
)
BATCH_RECORDS = _histogram(
    "batch_records",
    "Records in one batch a stage consumed and applied at once.",
    ["service"],
    buckets=(1, 2, 5, 10, 25, 50, 100, 200, 500, 1000),
)
BATCH_SECONDS = _histogram(
    "batch_seconds",
    "Time a stage spent on one batch: planning, writes, publishes and the commit.",
    ["service"],
)
END_TO_END_SECONDS = _histogram(
    "end_to_end_latency_seconds",
    "Time from a request's submission until a stage finished with it.",
    ["stage"],
)
PUBLISHED_RECORDS = _counter(
    "published_records_total",
    "Records a service handed to Kafka itself and the broker acknowledged, by topic (intake's"
    " accepted requests; what goes through FastStream is in faststream_published_messages_total).",
    ["service", "topic"],
)
REQUESTS = _counter(
    "requests_total",
    "Requests passing a lifecycle step (received, verified, dispatched, resolved, ...).",
    ["step", "category", "priority", "district"],
)
STAGE_HALTED = _gauge(
    "stage_halted",
    "1 while a stage has stopped consuming because its dead-letter limit was reached.",
    ["service"],
)
HTTP_REQUESTS = _counter(
    "http_requests_total",
    "HTTP requests answered, by route template and status code.",
    ["service", "route", "method", "status"],
)


def registry() -> CollectorRegistry:
    """The registry all services expose on /metrics."""
    return REGISTRY


# Set when a service runs several HTTP worker processes (shared.serving.serve): each process
# writes its samples to files there and /metrics adds them up. Counters and histograms are
# summed; the gauges below say how (``multiprocess_mode``; ignored in a single process), and
# the FastStream middleware's gauges carry a ``pid`` label.
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"


def metrics_page() -> bytes:
    """The /metrics page: this process's registry, or every worker's in multiprocess mode."""
    if os.environ.get(MULTIPROCESS_DIR):
        collected = CollectorRegistry()
        multiprocess.MultiProcessCollector(collected)  # type: ignore[no-untyped-call]
        return generate_latest(collected)
    return generate_latest(registry())


# --- Operations: lag, review queue, notifications, service levels -------------------------------

CONSUMER_LAG = _gauge(
    "consumer_lag",
    "Records on a partition not yet consumed by the group (end offset - committed offset), "
    "measured by the service that owns the group (shared.lag).",
    ["group", "topic", "partition"],
)
REVIEW_QUEUE_DEPTH = _gauge(
    "review_queue_depth",
    "Requests waiting for a human verifier.",
)
NOTIFICATIONS = _counter(
    "notifications_total",
    "Notification deliveries to citizens, by channel and result (sent, failed).",
    ["channel", "result"],
)
SLA_BREACHES = _counter(
    "sla_breaches_total",
    "Service-level deadlines missed (kind: acknowledge, resolve), by department and priority.",
    ["kind", "department", "priority"],
)
DB_COMMAND_SECONDS = _histogram(
    "db_command_seconds",
    "Time a database command took, by command and collection, including failed ones.",
    ["command", "collection", "outcome"],
)

# --- Intake: the submission records written off the request path, keyed retries ----------------

INTAKE_RECORDS = _counter(
    "intake_records_total",
    "Submission records intake's batch writer handled, by outcome (written, existed, "
    "dropped_full, dropped_rejected, dropped_stopped); a dropped record is created by verify.",
    ["outcome"],
)
INTAKE_RECORD_BUFFER = _gauge(
    "intake_record_buffer",
    "Submission records waiting for intake's batch writer.",
    multiprocess_mode="livesum",
)
INTAKE_RECORD_WRITE_FAILURES = _counter(
    "intake_record_write_failures_total",
    "Failed batch writes of submission records (retried), by error type.",
    ["error"],
)
INTAKE_REPLAYS = _counter(
    "intake_replays_total",
    "Keyed retries answered with the original receipt, by where it was found (cache, database).",
    ["source"],
)

# --- Closing the loop: verification calls, the call-back survey, requests for information --------

VERIFICATION_CALLS = _counter(
    "verification_calls_total",
    "Call-back attempts verifiers recorded on review items, by outcome (reached, unreachable, "
    "wrong_number).",
    ["outcome"],
)
VERIFICATION_CALLS_HANDLED = _counter(
    "verification_calls_handled_total",
    "Review items the call rule handled because the citizen could not be reached, by rule "
    "(escalate, verify, reject) and reason (unreachable, wrong_number).",
    ["rule", "reason"],
)
VERIFICATION_CALLS_OVERDUE = _gauge(
    "verification_calls_overdue",
    "Review items nobody has called yet past the call service level (five minutes by default).",
)
VERIFICATION_FIRST_CALL_SECONDS = _histogram(
    "verification_first_call_seconds",
    "Time from a request entering review until its first call-back attempt.",
    buckets=(30, 60, 120, 180, 300, 450, 600, 900, 1800, 3600),
)
SURVEYS = _counter(
    "surveys_total",
    "Call-back surveys by step (sent, reminded, satisfied, unsatisfied, closed_without_answer).",
    ["step"],
)
INFO_REQUESTS = _counter(
    "info_requests_total",
    "Departments' requests for information from the citizen, by step (asked, added).",
    ["step", "department"],
)
