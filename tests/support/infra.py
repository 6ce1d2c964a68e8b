"""Where the real Kafka broker and database are, for integration and end-to-end tests.

Order: ``KAFKA_BOOTSTRAP`` / ``MONGODB_URI`` from the environment (``make test`` sets them);
otherwise testcontainers when a Docker engine answers; otherwise the test fails with what to do.
A missing service is never a skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

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
def _from_environment_or_docker(
    variable: str, what: str, container: Callable[[], AbstractContextManager[str]]
) -> Iterator[str]:
    """The address in ``variable``; otherwise one of a container while a Docker engine
    answers; otherwise a failure that says what to do."""
    if value := os.environ.get(variable):
        yield value
        return
    if not docker_available():
        raise RuntimeError(f"No {what}: {variable} is unset and no Docker engine answers. {HOW}")
    with container() as address:
        yield address


@contextmanager
def _kafka_container() -> Iterator[str]:
    from testcontainers.kafka import KafkaContainer

    with KafkaContainer("apache/kafka:4.1.1").with_kraft() as kafka:
        yield kafka.get_bootstrap_server()


@contextmanager
def _mongodb_container() -> Iterator[str]:
    from testcontainers.mongodb import MongoDbContainer

    with MongoDbContainer("mongo:8") as mongo:
        yield mongo.get_connection_url()


def kafka_bootstrap() -> AbstractContextManager[str]:
    return _from_environment_or_docker("KAFKA_BOOTSTRAP", "Kafka broker", _kafka_container)


def mongodb_uri() -> AbstractContextManager[str]:
    return _from_environment_or_docker("MONGODB_URI", "database", _mongodb_container)
