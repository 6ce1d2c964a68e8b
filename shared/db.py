"""MongoDB wiring (PyMongo's async API); works with MongoDB and FerretDB alike."""

from __future__ import annotations

from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from shared.settings import ServiceSettings

Document = dict[str, Any]
Client = AsyncMongoClient[Document]
Database = AsyncDatabase[Document]


def build_client(settings: ServiceSettings, *, app_name: str) -> Client:
    """A client that fails fast when the server is away, so stages can back off and retry."""
    return AsyncMongoClient(
        settings.mongodb_uri,
        appname=f"cityhelp-{app_name}",
        tz_aware=True,
        serverSelectionTimeoutMS=5000,
        connectTimeoutMS=3000,
        socketTimeoutMS=20000,
    )


async def ping(client: Client) -> None:
    await client.admin.command("ping")
