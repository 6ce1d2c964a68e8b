"""Notify's storage: one document per (request, event, channel), the delivery's own record."""

from __future__ import annotations

from datetime import datetime

from pymongo.errors import DuplicateKeyError

from shared.db import Database, Document

NOTIFICATIONS = "notifications"


class NotifyRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def ensure_indexes(self) -> None:
        await self.db[NOTIFICATIONS].create_index("request_id")

    async def claim(
        self, *, notification_id: str, request_id: str, event: str, channel: str, at: datetime
    ) -> Document:
        """The delivery record, created as ``pending`` the first time; the stored one after."""
        doc: Document = {
            "_id": notification_id,
            "request_id": request_id,
            "event": event,
            "channel": channel,
            "status": "pending",
            "attempts": 0,
            "created_at": at,
        }
        try:
            await self.db[NOTIFICATIONS].insert_one(doc)
        except DuplicateKeyError:
            existing = await self.db[NOTIFICATIONS].find_one({"_id": notification_id})
            if existing is not None:
                return existing
        return doc

    async def mark(
        self, notification_id: str, *, status: str, at: datetime, error: str | None = None
    ) -> None:
        await self.db[NOTIFICATIONS].update_one(
            {"_id": notification_id},
            {"$set": {"status": status, "updated_at": at, "error": error}, "$inc": {"attempts": 1}},
        )
