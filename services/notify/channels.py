"""Delivery channels behind one interface, chosen by name in configuration."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

logger = logging.getLogger(__name__)


class Channel(Protocol):
    name: str

    async def send(self, *, notification_id: str, phone: str, text: str) -> None:
        """Deliver one message; the notification id lets the far end drop a repeat."""


class LogChannel:
    """Writes that a message went out, without the number or the text (personal data)."""

    name = "log"

    async def send(self, *, notification_id: str, phone: str, text: str) -> None:
        logger.info(
            "notification delivered to the log channel",
            extra={"event_id": notification_id, "count": len(text)},
        )


def build_channels(names: Sequence[str]) -> list[Channel]:
    known: dict[str, type[LogChannel]] = {"log": LogChannel}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown notification channels {unknown}; known: {sorted(known)}")
    return [known[n]() for n in names]
