"""A department's board: its open jobs by the deadline that falls next, with the time left.
Pure functions; the routes are in services/route/api.py, the reports it publishes in
services/route/actions.py."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from services.route import legs


def next_deadline(doc: Mapping[str, Any]) -> tuple[str, datetime]:
    """Which deadline the team works against now: acknowledge-by until it acknowledged, then
    resolve-by."""
    if legs.acknowledged(str(doc.get("progress", "dispatched"))):
        return "resolve", doc["resolve_by"]
    return "acknowledge", doc["acknowledge_by"]


def job_item(doc: Mapping[str, Any], *, now: datetime) -> dict[str, Any]:
    """One job as the team sees it: the job they received, its state and its countdown."""
    job = doc["job"]
    kind, due = next_deadline(doc)
    location = job.get("location") or {}
    return {
        "leg_id": doc["_id"],
        "request_id": doc["request_id"],
        "team_id": doc["team_id"],
        "progress": doc.get("progress", "dispatched"),
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
        "breached": list(doc.get("breached") or []),
    }


def jobs(docs: Iterable[Mapping[str, Any]], *, now: datetime) -> list[dict[str, Any]]:
    """The department's open jobs, the deadline that falls first at the top."""
    open_docs = [
        doc
        for doc in docs
        if doc.get("current", True) and doc.get("progress", "dispatched") not in legs.TERMINAL
    ]
    items = [job_item(doc, now=now) for doc in open_docs]
    return sorted(items, key=lambda i: (i["due_at"], str(i["leg_id"])))
