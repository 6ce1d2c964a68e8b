"""Counting from the topics and the database, never from the services' own counters.

:class:`TopicWatch` tails every output topic from its beginning for the whole run (it rides
out a broker restart like any consumer) and keeps, per request, what was published about it.
:func:`group_lag` reads the consumer groups' committed offsets, so "drained" means every stage
has committed everything that is on its input topics.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import ConsumerRecord

from shared.topics import DISPATCH_TOPICS, Topic
from tests.support.watch import TopicReader

OUTCOME_TOPICS = (Topic.VERIFIED, Topic.VERIFIED_PRIORITY, Topic.REVIEW, Topic.REJECTED)
DLQ_TOPICS = (Topic.DLQ_INTAKE, Topic.DLQ_VERIFY, Topic.DLQ_ROUTE, Topic.DLQ_NOTIFY)
WATCHED = (
    Topic.SUBMITTED,
    Topic.SUBMITTED_PRIORITY,
    *OUTCOME_TOPICS,
    *DISPATCH_TOPICS,
    Topic.NOTIFICATIONS,
    Topic.LIFECYCLE,
    *DLQ_TOPICS,
)


@dataclass
class Seen:
    """What the topics say, accumulated record by record."""

    records: Counter[str] = field(default_factory=Counter)  # per topic (contract name)
    submitted: dict[str, int] = field(default_factory=dict)  # request id -> records
    # request id -> outcome kinds seen ("verified", "needs_review", "rejected", "duplicate")
    outcomes: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    outcome_records: Counter[str] = field(default_factory=Counter)  # (kind) -> records
    outcome_copies: int = 0  # outcome records repeating a (request, ce_id) already seen
    legs: Counter[str] = field(default_factory=Counter)  # leg id -> dispatch records
    leg_ce_ids: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    legs_of: dict[str, set[str]] = field(
        default_factory=lambda: defaultdict(set)
    )  # request -> legs
    leg_slot: dict[str, str] = field(default_factory=dict)  # leg id -> department
    # notification id -> (request id, event, channel) and its "sent"/"failed" records
    notices: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    sent: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    dead_letters: Counter[str] = field(default_factory=Counter)  # "<service>:<reason>" -> n
    # request id -> "<service>:<reason>" of its submitted/verified record dead-lettered by the
    # stage that should have carried it on (verify, route); notify's are missing messages
    dead_lettered: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    # escalated events on help.requests.lifecycle: event id -> records; and the legs route
    # dispatched because another leg missed a deadline (rule "sla_<kind>")
    escalations: Counter[str] = field(default_factory=Counter)
    oversight: set[str] = field(default_factory=set)
    _outcome_ids: set[tuple[str, str]] = field(default_factory=set)

    def add(self, name: str, record: ConsumerRecord[bytes, bytes]) -> None:
        self.records[name] += 1
        headers = {k: v.decode("utf-8", "replace") for k, v in record.headers or ()}
        if name.startswith("help.dlq."):
            service = name.rsplit(".", 1)[-1]
            reason = headers.get("dlq_reason", "?")
            self.dead_letters[f"{service}:{reason}"] += 1
            origin = headers.get("dlq_origin_topic", "")
            key = (record.key or b"").decode("utf-8", "replace")
            # A request's own record given up by a stage: it will never go further by itself.
            carried_on = {
                "verify": ("help.requests.submitted", "help.requests.submitted.priority"),
                "route": ("help.requests.verified", "help.requests.verified.priority"),
            }
            if origin.endswith(carried_on.get(service, ("-",))):
                self.dead_lettered[key].add(f"{service}:{reason}")
            return
        try:
            value = json.loads(record.value or b"")
        except ValueError:
            return
        if not isinstance(value, dict):
            return
        request_id = str(value.get("request_id") or "")
        if name in (Topic.SUBMITTED.value, Topic.SUBMITTED_PRIORITY.value):
            self.submitted[request_id] = self.submitted.get(request_id, 0) + 1
        elif name in (t.value for t in OUTCOME_TOPICS):
            kind = {
                Topic.VERIFIED.value: "verified",
                Topic.VERIFIED_PRIORITY.value: "verified",
                Topic.REVIEW.value: "needs_review",
            }.get(name) or ("duplicate" if value.get("duplicate_of") else "rejected")
            self.outcomes[request_id].add(kind)
            self.outcome_records[kind] += 1
            ce_id = (request_id, headers.get("ce_id", ""))
            if ce_id in self._outcome_ids:
                self.outcome_copies += 1
            self._outcome_ids.add(ce_id)
        elif name in (t.value for t in DISPATCH_TOPICS):
            leg = str(value.get("leg_id"))
            self.legs[leg] += 1
            self.leg_ce_ids[leg].add(headers.get("ce_id", ""))
            self.legs_of[request_id].add(leg)
            self.leg_slot[leg] = str(value.get("department"))
            if str(value.get("rule_id", "")).startswith("sla_"):
                self.oversight.add(leg)
        elif name == Topic.LIFECYCLE.value:
            if value.get("status") == "escalated":
                self.escalations[str(value.get("event_id"))] += 1
        elif name == Topic.NOTIFICATIONS.value:
            nid = str(value.get("notification_id"))
            self.notices[nid] = (request_id, str(value.get("event")), str(value.get("channel")))
            if value.get("status") == "sent":
                self.sent[nid] += 1
            else:
                self.failed[nid] += 1


class TopicWatch(TopicReader[Seen]):
    """A group-less consumer of every watched topic of one service set, from the beginning."""

    def __init__(self, bootstrap: str, prefix: str) -> None:
        super().__init__(bootstrap, prefix, [t.value for t in WATCHED], Seen())


async def group_lag(bootstrap: str, prefix: str, watch: TopicWatch) -> dict[str, int]:
    """Uncommitted records per consumer group of this service set (its groups carry the
    prefix). A partition the group never committed counts from its beginning."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="cityhelp-chaos")
    await admin.start()
    try:
        groups = [g[0] for g in await admin.list_consumer_groups() if g[0].startswith(prefix)]
        lag: dict[str, int] = {}
        for group in groups:
            committed = await admin.list_consumer_group_offsets(group)
            topics = {tp.topic for tp in committed}
            ends = await watch.end_offsets(topics)
            lag[group[len(prefix) :]] = sum(
                max(0, end - (committed[tp].offset if tp in committed else 0))
                for tp, end in ends.items()
            )
        return lag
    finally:
        await admin.close()
