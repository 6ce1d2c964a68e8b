"""The producer options reach aiokafka through FastStream's broker; acks=all and idempotence
stay fixed whatever is configured."""

from __future__ import annotations

import pytest

from services.intake.settings import IntakeSettings
from shared.kafka import build_broker
from shared.settings import ServiceSettings

pytestmark = pytest.mark.unit

OPTIONS = ("acks", "enable_idempotence", "linger_ms", "max_batch_size", "compression_type")


def producer_options(settings: ServiceSettings) -> dict[str, object]:
    kwargs = build_broker(settings, service="intake")._connection_kwargs
    return {k: kwargs[k] for k in OPTIONS if k in kwargs}


def test_defaults_send_at_once_uncompressed_with_acks_all() -> None:
    assert producer_options(ServiceSettings()) == {
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 0,
        "max_batch_size": 16384,
        "compression_type": None,
    }


def test_batching_and_compression_come_from_the_service_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("INTAKE_KAFKA_LINGER_MS", "5")
    monkeypatch.setenv("INTAKE_KAFKA_MAX_BATCH_BYTES", "65536")
    monkeypatch.setenv("INTAKE_KAFKA_COMPRESSION", "gzip")
    assert producer_options(IntakeSettings()) == {
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 5,
        "max_batch_size": 65536,
        "compression_type": "gzip",
    }
