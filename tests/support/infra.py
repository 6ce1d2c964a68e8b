"""Where the real Kafka broker and database are, for integration and end-to-end tests.

Order: ``KAFKA_BOOTSTRAP`` / ``MONGODB_URI`` from the environment (``make test`` sets them);
otherwise testcontainers when a Docker engine answers; otherwise the test fails with what to do.
A missing service is never a skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

HOW = (
    "Run the suite with `make test`, or start the stack with `make infra` and export "
    "KAFKA_BOOTSTRAP=127.0.0.1:9092 MONGODB_URI=mongodb://127.0.0.1:27017/?directConnection=true"
)


def docker_available() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@contextmanager
def kafka_bootstrap() -> Iterator[str]:
    if value := os.environ.get("KAFKA_BOOTSTRAP"):
        yield value
        return
    if docker_available():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer("apache/kafka:4.1.1").with_kraft() as kafka:
            yield kafka.get_bootstrap_server()
        return
    raise RuntimeError(
        f"No Kafka broker: KAFKA_BOOTSTRAP is unset and no Docker engine answers. {HOW}"
    )


@contextmanager
def mongodb_uri() -> Iterator[str]:
    if value := os.environ.get("MONGODB_URI"):
        yield value
        return
    if docker_available():
        from testcontainers.mongodb import MongoDbContainer

        with MongoDbContainer("mongo:8") as mongo:
            yield mongo.get_connection_url()
        return
    raise RuntimeError(f"No database: MONGODB_URI is unset and no Docker engine answers. {HOW}")
