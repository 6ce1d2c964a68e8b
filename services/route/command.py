"""The command centre's view on route: live totals and activity (no personal data), the legs
it owns, and its one action, re-dispatch (the rule: services/route/redispatch.py).

Pure functions here; the HTTP routes are in services/route/api.py. Every route needs an
``X-Command-Key`` (or the page's session); route keeps only the keys' SHA-256 digests
(``ROUTE_COMMAND_KEYS``), compares in constant time and never logs the key. Verifier keys
(verify's review queue) are a different set: one role's key opens nothing of the other's.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from services.route import legs, redispatch
from services.route.models import Leg
from shared.db import unpack

# Only these fields are read: nothing that identifies or locates a person. The district is
# verification's code (its decision, or a verifier's correction), never the citizen's text.
FIELDS = ("status", "category", "district", "submitted_at")
# What the charts read of every leg.
LEG_FIELDS = (
    "current",
    "blocking",
    "progress",
    "breached",
    "acknowledge_by",
    "resolve_by",
    "priority",
    "job.priority",  # a leg stored before its job was packed has its priority there only
)
PRIORITIES = ("P1", "P2", "P3", "P4")


def summarise(docs: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Totals by status, category and district of request documents (pure)."""
    by_status: Counter[str] = Counter()
    by_category: Counter[str] = Counter()
    by_district: Counter[str] = Counter()
    total = 0
    for doc in docs:
        total += 1
        by_status[str(doc.get("status") or "unknown")] += 1
        by_category[str(doc.get("category") or "unknown")] += 1
        # The district code verify normalised: "金水区", "Jinshui District" and coordinates in
        # Jinshui all count as jinshui; a request not (yet) placed counts as unknown.
        by_district[str(doc.get("district") or "unknown")] += 1
    return {
        "total": total,
        "by_status": dict(sorted(by_status.items())),
        "by_category": dict(sorted(by_category.items())),
        "by_district": dict(sorted(by_district.items())),
    }


def per_minute(times: Iterable[datetime], *, now: datetime, minutes: int) -> list[int]:
    """How many of ``times`` fall in each of the last ``minutes`` minutes, oldest first."""
    counts = [0] * minutes
    for at in times:
        age = int((now - at).total_seconds() // 60)
        if 0 <= age < minutes:
            counts[minutes - 1 - age] += 1
    return counts


def activity(
    requests: Iterable[Mapping[str, Any]],
    all_legs: Iterable[Mapping[str, Any]],
    *,
    now: datetime,
    minutes: int = 30,
    breach_buckets: int = 12,
    bucket: timedelta = timedelta(minutes=10),
) -> dict[str, Any]:
    """The command centre's charts: requests submitted per minute, open work legs by priority,
    and service-level breaches over time (a breach falls at the deadline it missed)."""
    submitted = [doc["submitted_at"] for doc in requests if doc.get("submitted_at")]
    open_by_priority: Counter[str] = Counter()
    breach_times: list[datetime] = []
    for leg in all_legs:
        progress = str(leg.get("progress", "dispatched"))
        if leg.get("current", True) and leg.get("blocking", True) and progress not in legs.TERMINAL:
            priority = leg.get("priority") or unpack(leg.get("job")).get("priority", "P3")
            open_by_priority[str(priority)] += 1
        breached = leg.get("breached") or ()
        if "acknowledge" in breached and leg.get("acknowledge_by"):
            breach_times.append(leg["acknowledge_by"])
        if "resolve" in breached and leg.get("resolve_by"):
            breach_times.append(leg["resolve_by"])
    span = bucket.total_seconds()
    breaches = [0] * breach_buckets
    for at in breach_times:
        age = int((now - at).total_seconds() // span)
        if 0 <= age < breach_buckets:
            breaches[breach_buckets - 1 - age] += 1
    return {
        "requests_per_minute": per_minute(submitted, now=now, minutes=minutes),
        "open_by_priority": {p: open_by_priority.get(p, 0) for p in PRIORITIES},
        "breaches": breaches,
        "breach_bucket_minutes": int(span // 60),
        "generated_at": now,
    }


def owned_item(leg: Leg, parent: Leg | None) -> dict[str, Any]:
    """A command leg as the command centre lists it: what, where, why; no personal data."""
    job = leg.job.model_dump(mode="json")  # as the job went out
    return {
        "leg_id": leg.leg_id,
        "request_id": leg.request_id,
        "kind": "oversight" if not leg.blocking else "owned",
        "rule_id": job.get("rule_id"),
        "reason": job.get("reason"),
        "category": job.get("category"),
        "priority": job.get("priority"),
        "green_channel": job.get("green_channel", False),
        "district": (job.get("location") or {}).get("district"),
        "dispatched_at": job.get("dispatched_at"),
        "watched_department": parent.department if parent else None,
        "watched_team": parent.team_id if parent else None,
    }


def owned_list(owned: Iterable[Leg], parents: Mapping[str, Leg]) -> list[dict[str, Any]]:
    """The legs the command centre owns and may re-dispatch, most urgent and oldest first."""
    items = [
        owned_item(leg, parents.get(leg.parent) if leg.parent else None)
        for leg in owned
        if redispatch.owned(leg)
    ]
    return sorted(items, key=lambda i: (str(i["priority"]), str(i["dispatched_at"])))
