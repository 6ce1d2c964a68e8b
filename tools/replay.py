"""``python -m tools.replay <request id> | --all``: rebuild requests' timelines from the Kafka
topics alone and compare them with the stored ones (``shared.requests_store.get_request``, which
merges the record, verify's decision and route's first dispatch).

Every timeline entry is caused by one event on a topic, and its id is that event's ``ce_id``:

- ``help.requests.submitted[.priority]`` → ``submitted``; ``help.requests.verified[.priority]``
  → ``verified``; ``help.requests.review`` → ``needs_review``; ``help.requests.rejected`` →
  ``rejected`` or ``duplicate`` (verify's automatic decision and a verifier's alike);
- ``help.dispatch.<department>`` → ``dispatched`` per leg (first dispatch, re-routes,
  escalations, re-dispatches), and ``info_added`` for a citizen's addition (its ``ce_type``);
- ``help.requests.lifecycle`` → its status (acknowledged, in_progress, needs_info, resolved,
  escalated, reopened, closed);
- ``help.dlq.notify`` → ``notification_failed`` (id derived from the notification id).

An event published more than once (a redelivery) is one entry. Entries are compared by event id,
status and time (to the millisecond, what the database keeps). The tool prints each difference
and exits 1 when any request differs (2 when the one asked for is known nowhere). It reads every
partition of those topics up to their end at the start of the run, with no consumer group.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord
from pymongo import AsyncMongoClient

from shared import requests_store
from shared.envelope import CE_ID, CE_TYPE, decode_headers, event_type
from shared.kafka import effect_id
from shared.lag import client_options
from shared.settings import ServiceSettings
from shared.stage import DLQ_AT
from shared.topics import DISPATCH_TOPICS, Topic, TopicNames

INFO_ADDED_TYPE = event_type("leg.info_added")
# The value field that holds each topic's time of the transition.
_TIME_FIELD: dict[Topic, str] = {
    Topic.SUBMITTED: "submitted_at",
    Topic.SUBMITTED_PRIORITY: "submitted_at",
    Topic.VERIFIED: "verified_at",
    Topic.VERIFIED_PRIORITY: "verified_at",
    Topic.REVIEW: "flagged_at",
    Topic.REJECTED: "rejected_at",
    Topic.LIFECYCLE: "at",
    **dict.fromkeys(DISPATCH_TOPICS, "dispatched_at"),
}
TOPICS: tuple[Topic, ...] = (*_TIME_FIELD, Topic.DLQ_NOTIFY)


@dataclass(frozen=True, order=True, slots=True)
class Entry:
    """One timeline entry as both sides can state it."""

    at: datetime
    status: str
    event_id: str

    def line(self) -> str:
        return f"{self.at.isoformat()} {self.status} {self.event_id}"


def _ms(at: datetime) -> datetime:
    return at.replace(microsecond=at.microsecond // 1000 * 1000)


def _time(raw: Any) -> datetime:
    value = raw if isinstance(raw, datetime) else datetime.fromisoformat(str(raw))
    return _ms(value)


def entry_of(topic: Topic, value: dict[str, Any], headers: dict[str, str]) -> Entry | None:
    """The timeline entry one topic record causes (None: the record causes none)."""
    if topic is Topic.DLQ_NOTIFY:
        nid = headers.get("notification_id")
        if not nid or DLQ_AT not in headers:
            return None
        return Entry(_time(headers[DLQ_AT]), "notification_failed", effect_id("notify-failed", nid))
    event_id = headers.get(CE_ID)
    if not event_id:
        return None
    if topic in DISPATCH_TOPICS and headers.get(CE_TYPE) == INFO_ADDED_TYPE:
        return Entry(_time(value["added_at"]), "info_added", event_id)
    status = {
        Topic.SUBMITTED: "submitted",
        Topic.SUBMITTED_PRIORITY: "submitted",
        Topic.VERIFIED: "verified",
        Topic.VERIFIED_PRIORITY: "verified",
        Topic.REVIEW: "needs_review",
        Topic.REJECTED: "duplicate" if value.get("duplicate_of") else "rejected",
        Topic.LIFECYCLE: str(value.get("status")),
    }.get(topic, "dispatched")
    return Entry(_time(value[_TIME_FIELD[topic]]), status, event_id)


def rebuild(
    records: Iterable[tuple[Topic, bytes | None, bytes | None, dict[str, str]]],
) -> dict[str, list[Entry]]:
    """Every request's timeline from its records (key = request id), each event once."""
    timelines: dict[str, dict[str, Entry]] = defaultdict(dict)
    for topic, key, raw, headers in records:
        if key is None or raw is None:
            continue
        try:
            value = json.loads(raw)
        except ValueError:
            value = {}
        if topic is not Topic.DLQ_NOTIFY and not isinstance(value, dict):
            continue
        try:
            entry = entry_of(topic, value if isinstance(value, dict) else {}, headers)
        except (KeyError, ValueError):
            continue  # a record its stage dead-lettered: it caused no entry
        if entry is not None:
            timelines[key.decode()].setdefault(entry.event_id, entry)
    return {rid: sorted(entries.values()) for rid, entries in timelines.items()}


def stored_entries(doc: dict[str, Any] | None) -> list[Entry]:
    if doc is None:
        return []
    return sorted(
        Entry(_time(e["at"]), str(e["status"]), str(e["event_id"])) for e in doc["timeline"]
    )


def differences(rebuilt: Sequence[Entry], stored: Sequence[Entry]) -> list[str]:
    """What differs between the two timelines of one request, one line each."""
    topics = {e.event_id: e for e in rebuilt}
    store = {e.event_id: e for e in stored}
    lines = [f"  only on the topics: {e.line()}" for e in rebuilt if e.event_id not in store]
    lines += [f"  only stored:        {e.line()}" for e in stored if e.event_id not in topics]
    for event_id, entry in topics.items():
        other = store.get(event_id)
        if other is not None and other != entry:
            lines.append(f"  differs:            topics {entry.line()} / stored {other.line()}")
    return lines


async def read_topics(settings: ServiceSettings) -> dict[str, list[Entry]]:
    """Every record of the timeline's topics up to their current end, rebuilt."""
    names = TopicNames(settings.topic_prefix)
    by_name = {names(t): t for t in TOPICS}
    consumer = AIOKafkaConsumer(
        enable_auto_commit=False,
        group_id=None,
        auto_offset_reset="earliest",
        **client_options(settings),
    )
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        existing = await consumer.topics()
        wanted = sorted(name for name in by_name if name in existing)
        if not wanted:
            return {}
        consumer.subscribe(wanted)
        while not consumer.assignment():
            records.extend(
                r for part in (await consumer.getmany(timeout_ms=200)).values() for r in part
            )
        parts = sorted(consumer.assignment())
        ends = await consumer.end_offsets(parts)
        todo = {tp for tp in parts if ends[tp] > 0}
        while todo:
            batch = await consumer.getmany(timeout_ms=1000)
            for part in batch.values():
                records.extend(part)
            for tp in list(todo):
                if await consumer.position(tp) >= ends[tp]:
                    todo.discard(tp)
    finally:
        await consumer.stop()
    return rebuild(
        (by_name[r.topic], r.key, r.value, decode_headers(r.headers or ())) for r in records
    )


async def run(settings: ServiceSettings, request_id: str | None) -> int:
    rebuilt = await read_topics(settings)
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        settings.mongodb_uri, tz_aware=True, timeoutMS=30_000
    )
    db = client[settings.mongodb_database]
    try:
        if request_id is not None:
            ids = [request_id]
        else:
            stored_ids = {
                str(d["_id"]) async for d in db[requests_store.COLLECTION].find({}, {"_id": 1})
            }
            ids = sorted(set(rebuilt) | stored_ids)
        mismatched = 0
        for rid in ids:
            doc = await requests_store.get_request(db, rid)
            if request_id is not None and doc is None and rid not in rebuilt:
                print(f"replay: {rid} is on no topic and not stored")
                return 2
            lines = differences(rebuilt.get(rid, []), stored_entries(doc))
            if lines:
                mismatched += 1
                print(f"{rid}: the stored timeline differs from the topics")
                print("\n".join(lines))
            elif request_id is not None:
                print(f"{rid}: {len(rebuilt.get(rid, []))} entries, as stored")
                for entry in rebuilt.get(rid, []):
                    print(f"  {entry.line()}")
    finally:
        await client.close()
    print(f"replay: requests={len(ids)} matching={len(ids) - mismatched} mismatched={mismatched}")
    return 1 if mismatched else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.replay", description=__doc__)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("request_id", nargs="?", help="the request to rebuild")
    which.add_argument("--all", action="store_true", help="compare every request")
    args = parser.parse_args(argv)
    return asyncio.run(run(ServiceSettings(), None if args.all else args.request_id))


if __name__ == "__main__":
    sys.exit(main())
