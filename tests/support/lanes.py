"""Submitted requests for the priority-lane tests of verify and route: a backlog of ordinary
ones that keeps the ordinary lane busy and an urgent one that must overtake it, published as
intake publishes them."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime

from shared.schemas import SubmittedRequest
from tests.support.kafka import Record, produce_many, submitted_headers


def submitted(i: int, *, description: str, phone: str) -> SubmittedRequest:
    """A request from the 12345 hotline on the partner topic, as intake accepted it."""
    return SubmittedRequest.model_validate(
        {
            "request_id": f"lane-{uuid.uuid4()}",
            "submitted_at": datetime.now(UTC),
            "channel": "partner_topic",
            "partner_id": "12345-hotline",
            "external_id": f"hotline-{i}",
            "tracking_token_hash": "h",
            "request": {
                "category": "food_supply",
                "description": description,
                "contact": {"phone": phone},
                "location": {"district": "二七区"},
            },
        }
    )


def backlog(count: int) -> list[SubmittedRequest]:
    """Ordinary requests (food during a lockdown) that keep the ordinary lane busy."""
    return [
        submitted(i, description=f"小区封控，需要买菜，{i}号楼", phone=f"137{i:08d}")
        for i in range(count)
    ]


def urgent() -> SubmittedRequest:
    """A woman in labour who needs a car: a P1."""
    return submitted(
        -1, description="У жены схватки, отошли воды, нужна машина", phone="+86 136 0000 0001"
    )


def _record(request: SubmittedRequest) -> Record:
    headers = [(k, v.encode()) for k, v in submitted_headers(request).items()]
    return request.request_id.encode(), request.model_dump_json().encode(), headers


async def publish(bootstrap: str, topic: str, requests: Iterable[SubmittedRequest]) -> None:
    """The requests on ``topic`` (a submitted lane), all in flight at once."""
    await produce_many(bootstrap, topic, map(_record, requests))
