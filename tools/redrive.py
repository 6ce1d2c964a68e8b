"""``python -m tools.redrive --service <name>``: send a stage's dead letters back where they came
from, once the cause (configuration, a missing record, a bug) is fixed.

Each record on ``help.dlq.<service>`` is published again to its ``dlq_origin_topic`` with its
original key, bytes and headers — the ``dlq_*`` annotations (and notify's delivery annotations)
removed, a ``redriven_from`` header (``<dlq topic>:<partition>:<offset>``) added. The record
keeps its ``ce_id``, so every consumer of the origin topic treats it as the same event: stages
that had already applied it skip it, the one that dead-lettered it tries again.

The tool reads with a consumer group of its own (``cityhelp-redrive-<service>``, one per
``--reason`` filter) and commits each dead letter's offset right after its copy was
acknowledged (acks=all), so a dead letter is re-driven once even across interrupted runs; a
crash between the publish and the commit re-drives that one record again, which the stages'
idempotent effects absorb. It reads up to the end the topic had when the run started, so a
record that fails again is dead-lettered again and waits for the next run instead of looping.

Options: ``--reason <code>`` re-drives only dead letters with that ``dlq_reason`` (the others
are passed over by this filter's group and stay for an unfiltered run), ``--limit N`` stops after
N re-driven records, ``--dry-run`` prints what would be re-driven and changes nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord, OffsetAndMetadata, TopicPartition

from shared.envelope import decode_headers
from shared.lag import client_options
from shared.settings import ServiceSettings
from shared.stage import DLQ_ORIGIN_TOPIC, DLQ_REASON
from shared.topics import SERVICES, ServiceName, Topic, TopicNames, dlq_topic

REDRIVEN_FROM = "redriven_from"
# Annotations a stage adds when it dead-letters a record; the re-driven copy drops them.
_DLQ_PREFIX = "dlq_"
_NOTIFY_ANNOTATIONS = frozenset({"notification_id", "notify_channel", "notify_event"})


@dataclass
class Summary:
    redriven: int = 0
    passed_over: int = 0  # another reason than --reason
    unroutable: int = 0  # no origin topic, or one outside this deployment
    by_reason: Counter[str] = field(default_factory=Counter)
    by_origin: Counter[str] = field(default_factory=Counter)

    def line(self, *, dry_run: bool) -> str:
        verb = "would re-drive" if dry_run else "re-drove"
        reasons = ", ".join(f"{r}={n}" for r, n in sorted(self.by_reason.items())) or "none"
        return (
            f"[redrive] {verb} {self.redriven} record(s) ({reasons}); "
            f"passed over {self.passed_over} with another reason; "
            f"left {self.unroutable} without a known origin topic"
        )


def group_id(settings: ServiceSettings, service: ServiceName, reason: str | None) -> str:
    base = f"{settings.topic_prefix}cityhelp-redrive-{service}"
    return f"{base}-{reason}" if reason else base


def redriven_headers(
    record_headers: Sequence[tuple[str, bytes | None]], *, source: str
) -> list[tuple[str, bytes]]:
    """The original headers without the dead-letter annotations, plus ``redriven_from``."""
    kept = [
        (name, value or b"")
        for name, value in record_headers
        if not name.startswith(_DLQ_PREFIX)
        and name not in _NOTIFY_ANNOTATIONS
        and name != REDRIVEN_FROM
    ]
    kept.append((REDRIVEN_FROM, source.encode("utf-8")))
    return kept


async def redrive(
    settings: ServiceSettings,
    service: ServiceName,
    *,
    reason: str | None = None,
    limit: int | None = None,
    dry_run: bool = False,
    say: Callable[[str], None] = print,
    idle_seconds: float = 5.0,
) -> Summary:
    """Re-drive ``service``'s dead letters (up to the topic's end at the start of the run)."""
    names = TopicNames(settings.topic_prefix)
    source_topic = names(dlq_topic(service))
    known = {names(t) for t in Topic}
    options = client_options(settings)
    consumer = AIOKafkaConsumer(
        source_topic,
        group_id=group_id(settings, service, reason),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        **options,
    )
    # A dry run publishes nothing: it has no producer.
    producer = None if dry_run else AIOKafkaProducer(acks="all", enable_idempotence=True, **options)
    summary = Summary()
    await consumer.start()
    if producer is not None:
        await producer.start()
    try:
        ends = await _ends(consumer, source_topic, idle_seconds)
        say(
            f"[redrive] {source_topic}: {sum(ends.values())} record(s) ever dead-lettered; "
            f"group {group_id(settings, service, reason)}"
            + (f", reason {reason}" if reason else "")
            + (", dry run" if dry_run else "")
        )
        deadline = time.monotonic() + idle_seconds
        while limit is None or summary.redriven < limit:
            remaining = [tp for tp, end in ends.items() if await consumer.position(tp) < end]
            if not remaining:
                break
            batch = await consumer.getmany(*remaining, timeout_ms=500, max_records=50)
            if not batch:
                if time.monotonic() > deadline:
                    say("[redrive] the topic stopped answering before its end; stopping")
                    break
                continue
            deadline = time.monotonic() + idle_seconds
            for tp, records in batch.items():
                for record in records:
                    if record.offset >= ends[tp] or (
                        limit is not None and summary.redriven >= limit
                    ):
                        # Past the run's end or the limit: rewind so the group keeps it.
                        consumer.seek(tp, record.offset)
                        break
                    await _one(
                        record,
                        tp,
                        consumer=consumer,
                        producer=producer,
                        reason=reason,
                        known=known,
                        dry_run=dry_run,
                        summary=summary,
                        say=say,
                    )
    finally:
        if producer is not None:
            await producer.stop()
        await consumer.stop()
    say(summary.line(dry_run=dry_run))
    return summary


async def _ends(consumer: AIOKafkaConsumer, topic: str, wait: float) -> dict[TopicPartition, int]:
    """The end offset of each partition of ``topic`` once the group assigned them all."""
    deadline = time.monotonic() + max(wait, 30.0)
    while True:
        partitions = consumer.partitions_for_topic(topic) or set()
        wanted = {TopicPartition(topic, p) for p in partitions}
        if wanted and wanted <= consumer.assignment():
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"no partitions of {topic} were assigned to the re-drive group")
        await consumer.getmany(timeout_ms=200)  # joining the group happens in the background
    # Whatever that fetched is not handled: start every partition at the group's position.
    for tp in sorted(wanted):
        committed = await consumer.committed(tp)
        if committed is None:
            await consumer.seek_to_beginning(tp)
        else:
            consumer.seek(tp, committed)
    ends: dict[TopicPartition, int] = await consumer.end_offsets(sorted(wanted))
    return ends


async def _one(
    record: ConsumerRecord[bytes, bytes],
    tp: TopicPartition,
    *,
    consumer: AIOKafkaConsumer,
    producer: AIOKafkaProducer | None,
    reason: str | None,
    known: set[str],
    dry_run: bool,
    summary: Summary,
    say: Callable[[str], None],
) -> None:
    headers = decode_headers(record.headers or ())
    record_reason = headers.get(DLQ_REASON, "unknown")
    origin = headers.get(DLQ_ORIGIN_TOPIC, "")
    where = f"{tp.topic}:{tp.partition}:{record.offset}"
    key = record.key.decode("utf-8", errors="replace") if record.key else "-"
    if reason is not None and record_reason != reason:
        summary.passed_over += 1
    elif origin not in known:
        summary.unroutable += 1
        say(f"[redrive] {where} has no known origin topic ({origin!r}); left as it is")
    else:
        if producer is not None:
            await producer.send_and_wait(
                origin,
                record.value,
                key=record.key,
                headers=redriven_headers(record.headers or (), source=where),
            )
        summary.redriven += 1
        summary.by_reason[record_reason] += 1
        summary.by_origin[origin] += 1
        verb = "would re-drive" if dry_run else "re-drove"
        say(f"[redrive] {verb} {where} ({record_reason}) to {origin} key={key}")
    if not dry_run:
        # Committed after the copy is acknowledged: this dead letter is done for this group.
        await consumer.commit({tp: OffsetAndMetadata(record.offset + 1, "")})


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.redrive",
        description="Publish a stage's dead letters again to the topics they came from.",
    )
    parser.add_argument("--service", required=True, choices=SERVICES)
    parser.add_argument("--reason", help="only dead letters with this dlq_reason")
    parser.add_argument("--limit", type=int, help="stop after this many re-driven records")
    parser.add_argument("--dry-run", action="store_true", help="print, publish nothing")
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be 1 or more")
    settings = ServiceSettings()
    service: ServiceName = args.service
    asyncio.run(
        redrive(
            settings,
            service,
            reason=args.reason,
            limit=args.limit,
            dry_run=args.dry_run,
            say=lambda line: print(line, flush=True),
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
