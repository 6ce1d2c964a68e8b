"""Verify's composition root."""

from __future__ import annotations

from functools import partial
from typing import Any

from faststream.kafka import KafkaBroker

from services.verify import handlers
from services.verify.repository import VerifyRepository
from services.verify.settings import VerifySettings
from shared.db import Client
from shared.runtime import Runtime
from shared.schemas import VerifiedRequest
from shared.topics import Topic


def build_app(
    settings: VerifySettings | None = None,
    *,
    broker: KafkaBroker | None = None,
    client: Client | None = None,
    create_topics: bool = True,
) -> Any:
    settings = settings or VerifySettings()
    rt = Runtime.create(
        "verify", settings, broker=broker, client=client, create_topics=create_topics
    )
    rt.bus.declare(Topic.VERIFIED, schema=VerifiedRequest)
    repo = VerifyRepository(rt.db)
    rt.startup.append(repo.ensure_indexes)
    rt.subscribe(
        [Topic.SUBMITTED],
        partial(handlers.handle_submitted, bus=rt.bus, repo=repo),
        name="submitted",
    )
    return rt.http_app(title="City help: verify")
