"""Prometheus metrics shared by the four services.

Metric names are a closed set defined here, so a typo fails at import or type checking.
Labels never carry personal data: only services, topics, categories, priorities, districts,
departments, channels and outcome codes.
"""

from __future__ import annotations

import os

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

MESSAGES_RECEIVED = Counter(
    "messages_received_total",
    "Records a stage received from an input topic.",
    ["service", "topic"],
    namespace=NAMESPACE,
)
MESSAGES_PROCESSED = Counter(
    "messages_processed_total",
    "Records a stage finished, by outcome (ok, dead_lettered).",
    ["service", "topic", "outcome"],
    namespace=NAMESPACE,
)
MESSAGES_FAILED = Counter(
    "messages_failed_total",
    "Transient failures (retried without advancing the offset), by error kind.",
    ["service", "topic", "error"],
    namespace=NAMESPACE,
)
DEAD_LETTERS = Counter(
    "dead_letters_total",
    "Records sent to the service's dead-letter topic, by reason code.",
    ["service", "topic", "reason"],
    namespace=NAMESPACE,
)
PROCESSING_SECONDS = Histogram(
    "processing_seconds",
    "Time a stage spent on one record.",
    ["service", "topic"],
    namespace=NAMESPACE,
    buckets=_LATENCY_BUCKETS,
)
BATCH_RECORDS = Histogram(
    "batch_records",
    "Records in one batch a stage consumed and applied at once.",
    ["service"],
    namespace=NAMESPACE,
    buckets=(1, 2, 5, 10, 25, 50, 100, 200, 500, 1000),
)
BATCH_SECONDS = Histogram(
    "batch_seconds",
    "Time a stage spent on one batch: planning, writes, publishes and the commit.",
    ["service"],
    namespace=NAMESPACE,
    buckets=_LATENCY_BUCKETS,
)
END_TO_END_SECONDS = Histogram(
    "end_to_end_latency_seconds",
    "Time from a request's submission until a stage finished with it.",
    ["stage"],
    namespace=NAMESPACE,
    buckets=_LATENCY_BUCKETS,
)
REQUESTS = Counter(
    "requests_total",
    "Requests passing a lifecycle step (received, verified, dispatched, resolved, ...).",
    ["step", "category", "priority", "district"],
    namespace=NAMESPACE,
)
STAGE_HALTED = Gauge(
    "stage_halted",
    "1 while a stage has stopped consuming because its dead-letter limit was reached.",
    ["service"],
    namespace=NAMESPACE,
    multiprocess_mode="max",  # each worker measures the same value
)
HTTP_REQUESTS = Counter(
    "http_requests_total",
    "HTTP requests answered, by route template and status code.",
    ["service", "route", "method", "status"],
    namespace=NAMESPACE,
)


def registry() -> CollectorRegistry:
    """The registry all services expose on /metrics."""
    return REGISTRY


# Set when a service runs several HTTP worker processes (shared.runtime.serve): each process
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

CONSUMER_LAG = Gauge(
    "consumer_lag",
    "Records on a partition not yet consumed by the group (end offset - committed offset), "
    "measured by the service that owns the group (shared.lag).",
    ["group", "topic", "partition"],
    namespace=NAMESPACE,
    multiprocess_mode="max",  # each worker measures the same value
)
REVIEW_QUEUE_DEPTH = Gauge(
    "review_queue_depth",
    "Requests waiting for a human verifier.",
    namespace=NAMESPACE,
    multiprocess_mode="max",  # each worker measures the same value
)
NOTIFICATIONS = Counter(
    "notifications_total",
    "Notification deliveries to citizens, by channel and result (sent, failed).",
    ["channel", "result"],
    namespace=NAMESPACE,
)
SLA_BREACHES = Counter(
    "sla_breaches_total",
    "Service-level deadlines missed (kind: acknowledge, resolve), by department and priority.",
    ["kind", "department", "priority"],
    namespace=NAMESPACE,
)
DB_COMMAND_SECONDS = Histogram(
    "db_command_seconds",
    "Time a database command took, by command and collection, including failed ones.",
    ["command", "collection", "outcome"],
    namespace=NAMESPACE,
    buckets=_LATENCY_BUCKETS,
)

# --- Intake: the submission records written off the request path, keyed retries ----------------

INTAKE_RECORDS = Counter(
    "intake_records_total",
    "Submission records intake's batch writer handled, by outcome (written, existed, "
    "dropped_full, dropped_rejected, dropped_stopped); a dropped record is created by verify.",
    ["outcome"],
    namespace=NAMESPACE,
)
INTAKE_RECORD_BUFFER = Gauge(
    "intake_record_buffer",
    "Submission records waiting for intake's batch writer.",
    namespace=NAMESPACE,
    multiprocess_mode="livesum",
)
INTAKE_RECORD_WRITE_FAILURES = Counter(
    "intake_record_write_failures_total",
    "Failed batch writes of submission records (retried), by error type.",
    ["error"],
    namespace=NAMESPACE,
)
INTAKE_REPLAYS = Counter(
    "intake_replays_total",
    "Keyed retries answered with the original receipt, by where it was found (cache, database).",
    ["source"],
    namespace=NAMESPACE,
)

# --- Closing the loop: verification calls, the call-back survey, requests for information --------

VERIFICATION_CALLS = Counter(
    "verification_calls_total",
    "Call-back attempts verifiers recorded on review items, by outcome (reached, unreachable, "
    "wrong_number).",
    ["outcome"],
    namespace=NAMESPACE,
)
VERIFICATION_CALLS_HANDLED = Counter(
    "verification_calls_handled_total",
    "Review items the call rule handled because the citizen could not be reached, by rule "
    "(escalate, verify, reject) and reason (unreachable, wrong_number).",
    ["rule", "reason"],
    namespace=NAMESPACE,
)
VERIFICATION_CALLS_OVERDUE = Gauge(
    "verification_calls_overdue",
    "Review items nobody has called yet past the call service level (five minutes by default).",
    namespace=NAMESPACE,
    multiprocess_mode="max",  # each worker measures the same value
)
VERIFICATION_FIRST_CALL_SECONDS = Histogram(
    "verification_first_call_seconds",
    "Time from a request entering review until its first call-back attempt.",
    namespace=NAMESPACE,
    buckets=(30, 60, 120, 180, 300, 450, 600, 900, 1800, 3600),
)
SURVEYS = Counter(
    "surveys_total",
    "Call-back surveys by step (sent, reminded, satisfied, unsatisfied, closed_without_answer).",
    ["step"],
    namespace=NAMESPACE,
)
INFO_REQUESTS = Counter(
    "info_requests_total",
    "Departments' requests for information from the citizen, by step (asked, added).",
    ["step", "department"],
    namespace=NAMESPACE,
)
