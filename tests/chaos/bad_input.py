"""Bad input at volume: generated junk against every HTTP API and on every input topic.

HTTP: hypothesis draws requests for each endpoint of the four services — wrong types, missing
and extra fields, huge, unicode, NUL and lone-surrogate strings, NaN and infinities, nested junk,
bytes that are not JSON or not UTF-8, wrong content types, bodies over the size limit, junk
headers, unknown paths and methods, and raw bytes that are not HTTP at all. Every answer must
be a 4xx (a 2xx when the draw happens to be valid is counted apart); no 5xx, no dropped
connection, and every service still alive and ready afterwards.

Kafka: malformed records on every topic a stage consumes — not JSON, invalid UTF-8, wrong
schema, over 256 KiB, empty, tombstones, garbage CloudEvents headers, unknown request ids.
Each consumer must account for each record: a dead letter on ``help.dlq.<service>`` whose
origin headers point back at the record (same bytes), or ignored by a rule of its design
(:func:`expected`). Afterwards a valid request still goes through all four stages.

Both floods run against services started here (``make_services``) with the Open311, partner and
verifier keys they need; the Kafka flood also lifts the consecutive dead-letter limit, which a
separate test shows halting a stage.

The parts, one job each: ``credentials`` (the keys and the services' environment),
``personal_data`` (the citizens and the log check), ``http_strategies`` and ``http_cases`` (what
is sent), ``http_flood`` (sending and counting), ``kafka_records`` (the malformed records and what
each consumer must do) and ``kafka_flood`` (producing and accounting); this module runs both
floods for the chaos table.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

from shared.kafka import ensure_topics
from shared.settings import ServiceSettings
from shared.topics import SERVICES, ServiceName, Topic
from tests.chaos.context import ChaosContext, Row
from tests.chaos.credentials import service_env
from tests.chaos.http_flood import HttpFlood, http_flood
from tests.chaos.kafka_flood import KafkaFlood, TopicTally, kafka_flood
from tests.chaos.kafka_records import CONSUMERS
from tests.chaos.personal_data import log_files, people, personal_data_in_logs
from tests.support.services import ServiceSet

# --- the chaos table ------------------------------------------------------------------------------


async def start_services(ctx: ChaosContext, **env: str) -> ServiceSet:
    """Four services of this part's own (isolated topics, groups and database; logs next to
    the runner's), with the keys and limits it needs."""
    services = ServiceSet(
        ctx.kafka_bootstrap, ctx.mongodb_uri, ctx.services.log_dir, extra_env=dict(env)
    )
    await ensure_topics(
        ServiceSettings(
            KAFKA_BOOTSTRAP=ctx.kafka_bootstrap,
            MONGODB_URI=ctx.mongodb_uri,
            TOPIC_PREFIX=services.prefix,
        )
    )
    await asyncio.to_thread(services.start)
    return services


# Rows of the chaos table: the generated kinds grouped by the API they hit.
HTTP_FAMILIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "intake POST /v1/requests",
        ("json_", "bytes_junk", "oversized", "valid_body", "content_type", "headers"),
    ),
    ("intake GET /v1/requests/{id}", ("path_query",)),
    ("intake POST /v1/partner/requests", ("partner_",)),
    ("intake Open311 /open311/v2/*", ("open311_",)),
    ("verify /v1/review*", ("verify_",)),
    ("notify POST /v1/requests/{id}/survey", ("survey",)),
    ("route GET /v1/command/summary", ("command_summary",)),
    ("unknown paths and methods, every service", ("stray",)),
    ("raw bytes that are not HTTP, every service", ("raw_protocol",)),
)


def _family(kind: str) -> str:
    for name, prefixes in HTTP_FAMILIES:
        if kind.startswith(prefixes):
            return name
    return "other"


def http_rows(flood: HttpFlood) -> list[Row]:
    t = flood.tally
    rows = []
    for name, _ in HTTP_FAMILIES:
        outcomes: Counter[str] = Counter()
        for kind, counts in t.by_kind.items():
            if _family(kind) == name:
                outcomes.update(counts)
        bad = outcomes["5xx"] + outcomes["other"] + outcomes["no_answer"]
        rows.append(
            Row(
                check=f"bad HTTP input: {name}",
                tried=sum(outcomes.values()),
                ok=sum(outcomes.values()) - bad,
                bad=bad,
                meaning="4xx (2xx when the draw was valid, 3xx to the canonical path); "
                "bad = 5xx or no answer",
                seconds=flood.seconds,
            )
        )
    crashed = sum(not ok for ok in flood.alive.values())
    rows.append(
        Row(
            check="services after the bad HTTP input",
            tried=len(flood.alive),
            ok=len(flood.alive) - crashed,
            bad=crashed,
            meaning="process alive and /readyz 200",
            seconds=flood.seconds,
            fields={
                "http_tried": t.tried,
                "http_4xx": t.by_class["4xx"],
                "http_2xx_valid": t.by_class["2xx"],
                "http_3xx_redirect": t.by_class["3xx"],
                "http_5xx": t.by_class["5xx"],
                "http_no_answer": t.by_class["no_answer"],
                "http_kinds": len(t.by_kind),
                "http_services_crashed": crashed,
            },
        )
    )
    return rows


def kafka_rows(flood: KafkaFlood) -> list[Row]:
    rows = []
    per_topic: dict[Topic, list[tuple[ServiceName, TopicTally]]] = {}
    for (service, topic), tally in flood.tallies.items():
        per_topic.setdefault(topic, []).append((service, tally))
    for topic, entries in per_topic.items():
        tried = sum(t.tried for _, t in entries)
        good = sum(t.dead_lettered + sum(t.ignored.values()) for _, t in entries)
        bad = sum(t.unaccounted + t.wrongly_dead + t.altered for _, t in entries)
        fields = {f"{s}_dlq": t.dead_lettered for s, t in entries}
        fields |= {f"{s}_ignored": sum(t.ignored.values()) for s, t in entries if t.ignored}
        rows.append(
            Row(
                check=f"malformed records on {topic.value}",
                tried=tried,
                ok=good,
                bad=bad,
                meaning="per consumer: dead-lettered with matching origin, or ignored by rule",
                seconds=flood.seconds,
                fields=fields,
            )
        )
    crashed = sum(not ok for ok in flood.alive.values())
    stuck = sum(not ok for ok in flood.after_flood.values())
    lagging = sum(not ok for ok in flood.consumed.values())
    rows.append(
        Row(
            check="stages after the malformed-record flood",
            tried=len(SERVICES),
            ok=len(SERVICES) - max(crashed, stuck),
            bad=crashed + stuck + lagging + flood.stray_dead_letters,
            meaning="alive, ready, consumed every record, and processed a valid record after",
            seconds=flood.seconds,
            fields={
                "kafka_stages_crashed": crashed,
                "kafka_stages_stuck": stuck,
                "kafka_groups_behind": lagging,
                "kafka_stray_dead_letters": flood.stray_dead_letters,
            },
        )
    )
    return rows


async def run(ctx: ChaosContext) -> list[Row]:
    """Bad HTTP input (10,000 at scale 1) and 1,000 malformed records per input topic."""
    citizens = people(4, seed=int(time.time()))
    services = await start_services(ctx, **service_env(dlq_limit=1_000_000))
    try:
        inputs, per_topic = ctx.count(10_000, 200), ctx.count(1_000, 20)
        ctx.say(f"bad input: {inputs} generated HTTP requests against the four services")
        http = await http_flood(services, inputs, seed=1, citizen=citizens[0])
        ctx.say(f"bad input: {per_topic} malformed records on each of {len(CONSUMERS)} topics")
        kafka = await kafka_flood(
            services, ctx.kafka_bootstrap, per_topic, seed=2, citizen=citizens[1]
        )
    finally:
        await asyncio.to_thread(services.stop)
    leaks = personal_data_in_logs(log_files(services), citizens)
    rows = http_rows(http) + kafka_rows(kafka)
    rows.append(
        Row(
            check="no personal data in the logs of the bad-input run",
            tried=len(citizens) * len(citizens[0].needles()),
            ok=len(citizens) * len(citizens[0].needles()) - len(leaks),
            bad=len(leaks),
            meaning="names, phone numbers (any shape), addresses, descriptions searched in logs",
        )
    )
    return rows


def summary(flood: HttpFlood | KafkaFlood) -> str:
    """A printable account, for test failures and the report."""
    if isinstance(flood, HttpFlood):
        t = flood.tally
        kinds = {k: dict(v) for k, v in sorted(t.by_kind.items())}
        return (
            f"{t.tried} tried, {dict(t.by_class)}, not sent {t.not_sent}, "
            f"statuses {dict(sorted(t.statuses.items()))}, alive {flood.alive}, "
            f"{flood.seconds:.0f}s\nkinds {kinds}\nfailures {t.failures}"
        )
    lines = [
        f"consumed {flood.consumed}, stray {flood.stray_dead_letters}, alive {flood.alive}, "
        f"after {flood.after_flood}, {flood.seconds:.0f}s"
    ]
    for (service, topic), tally in sorted(flood.tallies.items()):
        lines.append(
            f"{service:6} {topic.value:34} tried {tally.tried} dlq {tally.dead_lettered} "
            f"ignored {dict(tally.ignored)} unaccounted {dict(tally.missing)} wrongly_dead "
            f"{tally.wrongly_dead} altered {tally.altered} reasons {dict(tally.reasons)}"
        )
    return "\n".join(lines)
