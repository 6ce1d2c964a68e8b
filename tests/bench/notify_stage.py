"""Notify alone, draining a backlog: ``python -m tests.bench.notify_stage [--requests N]``.

Starts the fake SMS gateway and one notify process against the stack in ``KAFKA_BOOTSTRAP`` and
``MONGODB_URI`` (a fresh topic prefix and database), publishes for each of N requests the
events notify hears about, as the other stages publish them (the receipt on
``help.requests.submitted``, ``help.requests.verified``, the leg's job on a dispatch topic, and
the department's ``acknowledged`` on ``help.requests.lifecycle``), and waits until notify has
finished every record. Then it prints the records drained per second, notify's CPU seconds
per request (utime + stime from /proc, far less sensitive to a loaded machine than wall time),
its database writes per request (inserted documents plus other write commands, as ``make
bench`` counts them) and the SMS the gateway took. Prints figures and asserts nothing; the
last line holds them all.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from shared.envelope import Envelope, derive_id, event_type
from shared.topics import Department, Topic, dispatch_topic
from tests.bench.stage_run import Record, drain
from tests.support.services import REPO, ServiceSet, free_port, wait_http_ready

CATEGORIES: tuple[tuple[str, Department], ...] = (
    ("medical", "medical"),
    ("food_supply", "community"),
    ("transport", "police"),
    ("health_code", "medical"),
    ("education", "community"),
)
LANGUAGES = ("zh", "zh", "zh", "en", "ru")
KINDS = ("submitted", "verified", "dispatch", "lifecycle")


def say(text: str) -> None:
    print(f"[notify-stage] {text}", flush=True)


def events(i: int, now: datetime) -> list[tuple[Topic, str, dict[str, Any]]]:
    """The records notify consumes for the i-th request: (topic, event name, value)."""
    request_id = derive_id("bench-notify", str(now.timestamp()), str(i))
    category, department = CATEGORIES[i % len(CATEGORIES)]
    language = LANGUAGES[i % len(LANGUAGES)]
    number = f"138{i:08d}"
    phone = f"+86{number}"
    leg_id = derive_id("leg", request_id, department)
    stamp = now.isoformat()
    contact = {"name": "王女士", "phone": phone}
    location = {"district": "jinshui", "address": "花园路 1 号", "lat": 34.77, "lon": 113.66}
    description = "需要胰岛素，家里老人独居"
    # What the verified request and its legs' jobs carry alike.
    facts = {
        "category": category,
        "description": description,
        "contact": contact,
        "location": location,
        "special_groups": ["elderly"],
        "language": language,
        "priority": "P3",
    }
    return [
        (
            Topic.SUBMITTED,
            "request.submitted",
            {
                "request_id": request_id,
                "submitted_at": stamp,
                "channel": "web",
                "tracking_token_hash": hashlib.sha256(request_id.encode()).hexdigest(),
                "request": {
                    "category": category,
                    "description": description,
                    "contact": {
                        "name": "王女士",
                        "phone": f"{number[:3]} {number[3:7]} {number[7:]}",
                    },
                    "location": location,
                    "special_groups": ["elderly"],
                    "language": language,
                },
            },
        ),
        (
            Topic.VERIFIED,
            "request.verified",
            {
                "request_id": request_id,
                "submitted_at": stamp,
                "verified_at": stamp,
                "channel": "web",
                **facts,
            },
        ),
        (
            dispatch_topic(department),
            "leg.dispatched",
            {
                "leg_id": leg_id,
                "request_id": request_id,
                "department": department,
                "team_id": f"{department}-jinshui-1",
                **facts,
                "submitted_at": stamp,
                "dispatched_at": stamp,
                "acknowledge_by": (now + timedelta(hours=4)).isoformat(),
                "resolve_by": (now + timedelta(hours=72)).isoformat(),
                "rule_version": "bench",
                "rule_id": "default",
            },
        ),
        (
            Topic.LIFECYCLE,
            "request.acknowledged",
            {
                "event_id": derive_id("ack", leg_id),
                "request_id": request_id,
                "status": "acknowledged",
                "at": stamp,
                "actor": "route",
                "leg_id": leg_id,
                "department": department,
                "team_id": f"{department}-jinshui-1",
                "category": category,
                "priority": "P3",
                "language": language,
                "contact": contact,
            },
        ),
    ]


def bench_records(prefix: str, requests: int, kinds: set[str]) -> Iterator[Record]:
    """Every request's records of the ``kinds`` asked for, as the other stages publish them."""
    now = datetime.now(UTC)
    for i in range(requests):
        for kind, (topic, name, value) in zip(KINDS, events(i, now), strict=True):
            if kind not in kinds:
                continue
            request_id = value["request_id"]
            envelope = Envelope(
                id=derive_id(name, request_id, str(i)),
                type=event_type(name),
                source="bench",
                subject=request_id,
                time=now,
            )
            yield (
                prefix + topic.value,
                json.dumps(value, ensure_ascii=False).encode(),
                request_id.encode(),
                [(k, v.encode()) for k, v in envelope.headers().items()],
            )


async def run(args: argparse.Namespace) -> None:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    uri = os.environ.get("MONGODB_URI", "mongodb://127.0.0.1:27017/?directConnection=true")
    kinds = set(args.kinds.split(","))
    log_dir = REPO / ".run" / "bench-notify"
    port = free_port()
    gateway = subprocess.Popen(
        [sys.executable, "-m", "tools.fake_gateway", "--port", str(port)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
    )
    gateway_url = f"http://127.0.0.1:{port}"
    services = ServiceSet(
        bootstrap,
        uri,
        log_dir,
        extra_env={
            "NOTIFY_CHANNELS": '["sms"]',
            "NOTIFY_SMS_URL": f"{gateway_url}/messages",
            "LOG_LEVEL": "WARNING",
        },
    )
    try:
        wait_http_ready(
            "gateway", gateway, f"{gateway_url}/messages", timeout=20, detail=lambda: ""
        )
        say(f"starting notify (prefix {services.prefix}, database {services.database})")
        services.start("notify")
        say(f"notify pid {services.procs['notify'].pid}")
        await asyncio.sleep(3)  # its consumers join their groups
        drained = await drain(
            services,
            "notify",
            bench_records(services.prefix, args.requests, kinds),
            bootstrap=bootstrap,
            uri=uri,
            timeout=args.timeout,
            say=say,
            profile_path=args.profile,
        )
        async with httpx.AsyncClient(timeout=30) as http:
            snapshot = (await http.get(f"{gateway_url}/messages")).json()
        say(f"sms {len(snapshot['messages'])}, duplicates at the gateway {snapshot['duplicates']}")
        print(
            "notify_stage:"
            + drained.figures(args.requests)
            + f" sms={len(snapshot['messages'])} duplicates={snapshot['duplicates']}",
            flush=True,
        )
    finally:
        services.stop()
        gateway.terminate()
        gateway.wait(timeout=10)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.notify_stage", description=__doc__)
    parser.add_argument("--requests", type=int, default=3000, help="requests (3000)")
    parser.add_argument("--kinds", default=",".join(KINDS), help=",".join(KINDS))
    parser.add_argument("--profile", help="write a py-spy profile of notify here")
    parser.add_argument("--timeout", type=float, default=600.0, help="drain wait (600 s)")
    asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
