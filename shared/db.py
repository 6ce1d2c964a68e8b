"""MongoDB wiring (PyMongo's async API); works with MongoDB and FerretDB alike."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import bson
from bson.codec_options import CodecOptions
from pymongo import AsyncMongoClient, monitoring
from pymongo.asynchronous.database import AsyncDatabase

from shared.metrics import DB_COMMAND_SECONDS
from shared.settings import ServiceSettings

Document = dict[str, Any]
Client = AsyncMongoClient[Document]
Database = AsyncDatabase[Document]

# The server's error code for an insert whose ``_id`` (or unique key) exists already.
DUPLICATE_KEY = 11000
# How packed subdocuments are read back: times as the client returns them (tz-aware, UTC).
_PACKED: CodecOptions[Document] = CodecOptions(tz_aware=True)


def pack(document: Mapping[str, Any]) -> bytes:
    """A subdocument stored as one value (its BSON bytes) instead of as fields.

    For parts of a document written whole and read whole, never filtered, projected or
    updated by field (a leg's job as it went out, the submission a decision carries).
    FerretDB 1.x keeps a type schema of every field of every document and encodes each field
    on its own, so its cost per insert grows with the number of fields, not the bytes: a
    1.4 KB document of 100 nested fields took 0.30-0.39 ms of its CPU, the same bytes as one
    value 0.04-0.05 ms (FerretDB 1.24 on SQLite, batches of 100). MongoDB stores both alike.
    """
    return bson.encode(document)


def unpack(value: object) -> Document:
    """A subdocument stored by :func:`pack`; one stored as fields (written before it was
    packed) comes back as it is, and a missing one as ``{}``."""
    if isinstance(value, bytes):
        return bson.decode(value, codec_options=_PACKED)
    return dict(value) if isinstance(value, Mapping) else {}


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
