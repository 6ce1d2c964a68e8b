"""What route's handlers are given: one frozen context, built once in ``app.py``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from services.route import domain
from services.route.published import PublishedEvents
from services.route.repository import RouteRepository
from services.route.teams import Directory
from shared.envelope import utcnow
from shared.kafka import EventBus
from shared.schemas import Priority

# The actor of every event route publishes (its own lifecycle events are skipped on the way in).
ACTOR = "route"


@dataclass(frozen=True)
class RouteContext:
    bus: EventBus
    repo: RouteRepository
    rules: domain.Rules
    levels: dict[Priority, domain.ServiceLevel]
    directory: Directory
    # Looks for a leg on its dispatch topic after a crash between publish and mark (None: never
    # looks, and such a leg is published again with the same ids).
    published: PublishedEvents | None = None
    # The time, for every stamp route writes and every deadline it checks (tests fix it).
    clock: Callable[[], datetime] = utcnow
