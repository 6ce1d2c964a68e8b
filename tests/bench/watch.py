"""Latencies measured from outside the services: a group-less consumer of one service set's
topics, keeping per request (record key = request id) when it was submitted (the submitted
record's CloudEvents ``ce_time``), when its first dispatch job went out (that record's Kafka
timestamp), when its first notification did, and what verify decided.

Only keys and headers are read on the hot topics; a value is parsed only on the rejected topic
(to tell a duplicate from a rejection), so that the observer stays cheap next to the pipeline.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from aiokafka.structs import ConsumerRecord

from shared.topics import DISPATCH_TOPICS, Topic
from tests.bench.stats import Quantile, quantiles
from tests.support.watch import TopicReader

SUBMITTED = (Topic.SUBMITTED.value, Topic.SUBMITTED_PRIORITY.value)
DISPATCH = tuple(t.value for t in DISPATCH_TOPICS)
DLQ = tuple(t.value for t in (Topic.DLQ_VERIFY, Topic.DLQ_ROUTE))
# help.requests.verified and any lane of it (a priority lane, when there is one)
VERIFIED = tuple(t.value for t in Topic if t.value.startswith(Topic.VERIFIED.value))
WATCHED = (
    *SUBMITTED,
    *VERIFIED,
    Topic.REVIEW.value,
    Topic.REJECTED.value,
    *DISPATCH,
    Topic.NOTIFICATIONS.value,
    Topic.LIFECYCLE.value,
    Topic.STATUS.value,
    Topic.DLQ_INTAKE.value,
    *DLQ,
    Topic.DLQ_NOTIFY.value,
)


@dataclass
class Track:
    """One request as the topics tell it; times in epoch milliseconds."""

    submit_ms: float | None = None
    dispatch_ms: float | None = None
    notify_ms: float | None = None
    verify_ms: float | None = None  # verify's outcome on its topic
    outcome: str = ""  # "verified", "needs_review", "rejected", "duplicate"
    dead_lettered: bool = False
    records: int = 0  # records about it on every watched topic


def ce_time_ms(headers: dict[str, bytes]) -> float | None:
    raw = headers.get("ce_time")
    if raw is None:
        return None
    try:
        return datetime.fromisoformat(raw.decode()).timestamp() * 1000
    except ValueError:
        return None


@dataclass
class Observed:
    """Everything seen so far."""

    tracks: dict[str, Track] = field(default_factory=dict)
    per_topic: Counter[str] = field(default_factory=Counter)

    def add(self, name: str, record: ConsumerRecord[bytes, bytes]) -> None:
        self.per_topic[name] += 1
        key = (record.key or b"").decode("utf-8", "replace")
        track = self.tracks.get(key)
        if track is None:
            track = self.tracks[key] = Track()
        track.records += 1
        ts = float(record.timestamp)
        if name in SUBMITTED:
            if track.submit_ms is None:
                track.submit_ms = ce_time_ms(dict(record.headers or ())) or ts
        elif name in DISPATCH:
            if track.dispatch_ms is None or ts < track.dispatch_ms:
                track.dispatch_ms = ts
        elif name == Topic.NOTIFICATIONS.value:
            if track.notify_ms is None or ts < track.notify_ms:
                track.notify_ms = ts
        elif name in VERIFIED:
            track.outcome = track.outcome or "verified"
            if track.verify_ms is None or ts < track.verify_ms:
                track.verify_ms = ts
        elif name == Topic.REVIEW.value:
            track.outcome = track.outcome or "needs_review"
        elif name == Topic.REJECTED.value:
            try:
                value = json.loads(record.value or b"{}")
            except ValueError:
                value = {}
            duplicate = isinstance(value, dict) and value.get("duplicate_of")
            track.outcome = track.outcome or ("duplicate" if duplicate else "rejected")
        elif name in DLQ:
            track.dead_lettered = True


@dataclass(frozen=True)
class Outcomes:
    """The requests of one step (those seen on the submitted topics), counted and timed."""

    accepted: int
    dispatched: int
    needs_review: int
    rejected: int  # rejections and duplicates: decided, never dispatched
    dead_lettered: int  # given up by verify or route (counted in lost as well)
    lost: int  # accepted but neither dispatched nor decided when the bench stopped waiting
    first_submit_ms: float | None
    last_submit_ms: float | None
    last_dispatch_ms: float | None
    dispatch: dict[str, Quantile | None]
    notify: dict[str, Quantile | None]
    records_per_request: float | None  # records on all topics per request that was dispatched

    @property
    def accept_per_s(self) -> float:
        return _per_s(self.accepted, self.first_submit_ms, self.last_submit_ms)

    @property
    def e2e_per_s(self) -> float:
        """Dispatched requests per second, from the first submission to the last dispatch."""
        return _per_s(self.dispatched, self.first_submit_ms, self.last_dispatch_ms)


def _per_s(count: int, first_ms: float | None, last_ms: float | None) -> float:
    """``count`` over the span from ``first_ms`` to ``last_ms`` (at least one second)."""
    if first_ms is None or last_ms is None:
        return 0.0
    return count / max(1.0, (last_ms - first_ms) / 1000)


def outcomes(tracks: dict[str, Track], ids: set[str] | None, end_ms: float) -> Outcomes:
    """Count and time the requests in ``ids`` (None: every submitted one). A request not yet
    dispatched (nor decided otherwise) counts in the latencies as censored at ``end_ms``: its
    latency is at least that, and a percentile that falls on it is printed as ``>N``."""
    chosen = [
        t for key, t in tracks.items() if t.submit_ms is not None and (ids is None or key in ids)
    ]
    dispatched = [t for t in chosen if t.dispatch_ms is not None]
    review = sum(1 for t in chosen if t.dispatch_ms is None and t.outcome == "needs_review")
    rejected = sum(
        1 for t in chosen if t.dispatch_ms is None and t.outcome in ("rejected", "duplicate")
    )
    lost = len(chosen) - len(dispatched) - review - rejected
    dispatch_latency: list[tuple[float, bool]] = []
    notify_latency: list[tuple[float, bool]] = []
    for t in chosen:
        assert t.submit_ms is not None
        if t.dispatch_ms is not None:
            dispatch_latency.append((max(0.0, t.dispatch_ms - t.submit_ms), False))
        elif t.outcome in ("", "verified"):
            dispatch_latency.append((max(0.0, end_ms - t.submit_ms), True))
        if t.notify_ms is not None:
            notify_latency.append((max(0.0, t.notify_ms - t.submit_ms), False))
        else:
            notify_latency.append((max(0.0, end_ms - t.submit_ms), True))
    submits = [t.submit_ms for t in chosen if t.submit_ms is not None]
    records = sum(t.records for t in dispatched)
    return Outcomes(
        accepted=len(chosen),
        dispatched=len(dispatched),
        needs_review=review,
        rejected=rejected,
        dead_lettered=sum(1 for t in chosen if t.dead_lettered and t.dispatch_ms is None),
        lost=lost,
        first_submit_ms=min(submits) if submits else None,
        last_submit_ms=max(submits) if submits else None,
        last_dispatch_ms=max((t.dispatch_ms for t in dispatched if t.dispatch_ms), default=None),
        dispatch=quantiles(dispatch_latency),
        notify=quantiles(notify_latency),
        records_per_request=records / len(dispatched) if dispatched else None,
    )


def per_second(times_ms: list[float], start_ms: float, seconds: int) -> list[int]:
    """How many of ``times_ms`` fall in each second from ``start_ms`` (for the plots)."""
    counts = [0] * max(0, seconds)
    for t in times_ms:
        i = int((t - start_ms) // 1000)
        if 0 <= i < len(counts):
            counts[i] += 1
    return counts


class Watch(TopicReader[Observed]):
    """Reads one service set's watched topics from their beginning until stopped."""

    def __init__(self, bootstrap: str, prefix: str) -> None:
        super().__init__(bootstrap, prefix, WATCHED, Observed(), max_poll_records=5000)
