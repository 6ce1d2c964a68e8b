"""A department's board: its open jobs by the deadline that falls next, with the time left.
Pure functions; the routes are in services/route/api.py, the reports it publishes in
services/route/actions.py."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from services.route import legs
from services.route.models import Leg


def next_deadline(leg: Leg) -> tuple[str, datetime]:
    """Which deadline the team works against now: acknowledge-by until it acknowledged, then
    resolve-by."""
    if legs.acknowledged(leg.progress):
        return "resolve", leg.resolve_by
    return "acknowledge", leg.acknowledge_by


def job_item(leg: Leg, *, now: datetime) -> dict[str, Any]:
    """One job as the team sees it: the job they received, its state and its countdown."""
    job = leg.job.model_dump(mode="json")  # as the job went out
    kind, due = next_deadline(leg)
    location = job.get("location") or {}
    return {
        "leg_id": leg.leg_id,
        "request_id": leg.request_id,
        "team_id": leg.team_id,
        "progress": leg.progress,
        "priority": job.get("priority"),
        "green_channel": job.get("green_channel", False),
        "category": job.get("category"),
        "description": job.get("description"),
        "special_groups": job.get("special_groups", []),
        "district": location.get("district"),
        "address": location.get("address"),
        "phone": (job.get("contact") or {}).get("phone"),
        "reason": job.get("reason"),
        "deadline": kind,
        "due_at": due,
        "seconds_left": int((due - now).total_seconds()),
        "breached": list(leg.breached),
    }


def jobs(department_legs: Iterable[Leg], *, now: datetime) -> list[dict[str, Any]]:
    """The department's open jobs, the deadline that falls first at the top."""
    items = [job_item(leg, now=now) for leg in department_legs if leg.open]
    return sorted(items, key=lambda i: (i["due_at"], str(i["leg_id"])))
