"""MongoDB wiring (PyMongo's async API); works with MongoDB and FerretDB alike."""

from __future__ import annotations

import re
from typing import Any

from pymongo import AsyncMongoClient, monitoring
from pymongo.asynchronous.database import AsyncDatabase

from shared.metrics import DB_COMMAND_SECONDS
from shared.settings import ServiceSettings

Document = dict[str, Any]
Client = AsyncMongoClient[Document]
Database = AsyncDatabase[Document]

# The server's error code for an insert whose ``_id`` (or unique key) exists already.
DUPLICATE_KEY = 11000


# A collection named by a time bucket (route's ``sla_timers_<YYYYMMDDHHMM>``): labelled by its
# family, so the metric gains no label value per minute.
_BUCKETED = re.compile(r"(_\d{8,})+$")

# Commands whose time is not the service's own (handshakes, health checks, sessions' ends).
_UNTIMED = frozenset({"hello", "ismaster", "isMaster", "ping", "endSessions", "saslStart"})


def collection_label(collection: str) -> str:
    """A collection's name as a metric label: a time-bucket suffix becomes ``_*``."""
    return _BUCKETED.sub("_*", collection)


class CommandTimer(monitoring.CommandListener):
    """Times every database command into ``cityhelp_db_command_seconds``: which collections and
    operations a stage spends its time on. Labels are command and collection names only."""

    def __init__(self) -> None:
        self._collections: dict[tuple[Any, int], str] = {}

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name in _UNTIMED:
            return
        # {"find": "<collection>", …}; a cursor's next batch names it apart (getMore).
        target = event.command.get(event.command_name)
        if not isinstance(target, str):
            target = event.command.get("collection")
        if isinstance(target, str) and event.command_name == "renameCollection":
            target = target.partition(".")[2]  # "<database>.<collection>"
        collection = collection_label(target) if isinstance(target, str) else "-"
        if len(self._collections) > 10_000:  # finished events lost: never grow without bound
            self._collections.clear()
        self._collections[(event.connection_id, event.request_id)] = collection

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        self._observe(event, "ok")

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self._observe(event, "error")

    def _observe(
        self, event: monitoring.CommandSucceededEvent | monitoring.CommandFailedEvent, outcome: str
    ) -> None:
        collection = self._collections.pop((event.connection_id, event.request_id), None)
        if collection is None:
            return
        DB_COMMAND_SECONDS.labels(event.command_name, collection, outcome).observe(
            event.duration_micros / 1e6
        )


def build_client(settings: ServiceSettings, *, app_name: str) -> Client:
    """A client that fails fast when the server is away, so stages can back off and retry."""
    return AsyncMongoClient(
        settings.mongodb_uri,
        appname=f"cityhelp-{app_name}",
        tz_aware=True,
        serverSelectionTimeoutMS=5000,
        connectTimeoutMS=3000,
        socketTimeoutMS=20000,
        event_listeners=[CommandTimer()],
    )


async def ping(client: Client) -> None:
    await client.admin.command("ping")
