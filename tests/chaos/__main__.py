"""`make chaos`: the fault suite against a running local stack.

    KAFKA_BOOTSTRAP=... MONGODB_URI=... CITYHELP_RUN_DIR=... KAFKA_PORT=... MONGODB_PORT=... \\
        .venv/bin/python -m tests.chaos [--requests 20000]

Starts the four services (notify sending SMS to a fake gateway that records every message),
runs the surge with its faults (tests/chaos/surge.py), then the bad-input and authentication
checks (tests/chaos/bad_input.py, tests/chaos/auth.py) when they exist, prints one table and
ends with a single ``accepted=… lost=… duplicate_effects=…`` line. Exit status 1 when anything
was lost or duplicated or any row has a bad count.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import logging
import os
import signal
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path

from shared.kafka import ensure_topics
from shared.settings import ServiceSettings
from tests.chaos import surge
from tests.chaos.context import REPO, ChaosContext, GatewayProcess, Row
from tests.support.services import ServiceSet

OTHER_PARTS = ("bad_input", "auth", "replicas")
FIRST_FIELDS = ("accepted", "lost", "duplicate_effects")


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__)
    parser.add_argument(
        "--requests",
        type=int,
        default=surge.FULL_SIZE,
        help=f"size of the surge (default {surge.FULL_SIZE})",
    )
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=7200.0,
        help="at most this many seconds to wait for the stages to drain after the surge, while "
        "they make progress (default 7200; given up after 300 s without progress)",
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=0.0,
        help="time budget in seconds: send for half of it, drain for the rest, then count "
        "(default: none; send everything and wait for the drain)",
    )
    parser.add_argument(
        "--parts",
        default="surge," + ",".join(OTHER_PARTS),
        help="comma-separated parts to run (default: all)",
    )
    return parser.parse_args(argv)


def table(rows: list[Row]) -> str:
    width = max([len(r.check) for r in rows] + [5])
    lines = [
        f"{'check':<{width}}  {'tried':>7}  {'ok':>7}  {'bad':>5}  {'seconds':>8}  meaning",
        "-" * (width + 44),
    ]
    for r in rows:
        lines.append(
            f"{r.check:<{width}}  {r.tried:>7}  {r.ok:>7}  {r.bad:>5}  "
            f"{r.seconds:>8.1f}  {r.meaning}"
        )
    return "\n".join(lines)


def summary(rows: list[Row]) -> dict[str, int]:
    """The last line's figures: every row's fields, summed by name."""
    fields: dict[str, int] = dict.fromkeys(FIRST_FIELDS, 0)
    for r in rows:
        for name, value in r.fields.items():
            fields[name] = fields.get(name, 0) + int(value)
    fields["bad_rows"] = sum(1 for r in rows if r.bad > 0)
    if started := os.environ.get("CHAOS_STARTED"):
        fields["wall_s"] = int(time.time()) - int(started)
    return fields


async def run_part(
    ctx: ChaosContext, name: str, part: Callable[[ChaosContext], Awaitable[list[Row]]]
) -> list[Row]:
    started = time.monotonic()
    try:
        return await part(ctx)
    except Exception as exc:
        traceback.print_exc()
        return [
            Row(
                f"{name}: crashed",
                1,
                0,
                1,
                f"{type(exc).__name__}: {exc}"[:200],
                time.monotonic() - started,
            )
        ]


class BrokerAwayFilter(logging.Filter):
    """Counts, instead of printing, the runner's own Kafka clients' complaints while the broker
    is away (the planned restart): a line per client per retry says nothing the fault line
    does not. Anything else from aiokafka is printed as usual."""

    NOISE = ("Unable connect to node", "Unable to update metadata", "Failed fetch messages")

    def __init__(self) -> None:
        super().__init__()
        self.dropped = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if record.getMessage().startswith(self.NOISE):
            self.dropped += 1
            return False
        return True


def quiet_broker_away() -> BrokerAwayFilter:
    noise = BrokerAwayFilter()
    handler = logging.StreamHandler()
    handler.addFilter(noise)
    logging.getLogger("aiokafka").addHandler(handler)
    logging.getLogger("aiokafka").propagate = False
    return noise


def load_part(name: str) -> Callable[[ChaosContext], Awaitable[list[Row]]] | None:
    """``tests.chaos.<name>.run`` if that module exists; None otherwise."""
    if importlib.util.find_spec(f"tests.chaos.{name}") is None:
        return None
    module = importlib.import_module(f"tests.chaos.{name}")
    run: Callable[[ChaosContext], Awaitable[list[Row]]] = module.run
    return run


async def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP")
    uri = os.environ.get("MONGODB_URI")
    if not bootstrap or not uri:
        print("set KAFKA_BOOTSTRAP and MONGODB_URI (deploy/local/chaos.sh does)", file=sys.stderr)
        return 2
    noise = quiet_broker_away()
    run_dir = Path(os.environ.get("CITYHELP_RUN_DIR") or REPO / ".run" / "chaos")
    log_dir = run_dir / "logs" / "services"
    gateway = GatewayProcess(log_dir).start()
    # The runner's clients stand for many citizens behind a proxy on the loopback.
    env = {**gateway.notify_env(), "INTAKE_TRUSTED_PROXIES": "127.0.0.1"}
    if level := os.environ.get("LOG_LEVEL"):
        env["LOG_LEVEL"] = level
    services = ServiceSet(bootstrap, uri, log_dir, extra_env=env)
    await ensure_topics(
        ServiceSettings(KAFKA_BOOTSTRAP=bootstrap, MONGODB_URI=uri, TOPIC_PREFIX=services.prefix)
    )
    ctx = ChaosContext(
        kafka_bootstrap=bootstrap,
        mongodb_uri=uri,
        services=services,
        scale=args.requests / surge.FULL_SIZE,
        gateway_url=gateway.url,
        drain_timeout=args.drain_timeout,
        budget=args.budget,
    )
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, ctx.request_stop)
    wanted = [p.strip() for p in args.parts.split(",") if p.strip()]
    ctx.say(
        f"starting intake, verify, route, notify (topic prefix {services.prefix}, "
        f"logs in {log_dir}); SMS go to the fake gateway at {gateway.url}"
    )
    rows: list[Row] = []
    missing: list[str] = []
    try:
        await asyncio.to_thread(services.start)
        if "surge" in wanted:
            rows += await run_part(ctx, "surge", surge.run)
        for name in OTHER_PARTS:
            if name not in wanted:
                continue
            part = load_part(name)
            if part is None:
                missing.append(name)
                ctx.say(f"tests/chaos/{name}.py is not there: its rows are missing")
                continue
            ctx.say(f"running tests/chaos/{name}.py")
            rows += await run_part(ctx, name, part)
    finally:
        await asyncio.to_thread(services.stop)
        gateway.stop()
    if noise.dropped:
        ctx.say(f"(the runner's Kafka clients retried {noise.dropped}x while the broker was away)")
    print()
    print(table(rows))
    print()
    fields = summary(rows)
    if missing:
        print(f"parts not run (module missing): {', '.join(missing)}")
    print(" ".join(f"{k}={v}" for k, v in fields.items()))
    failed = fields["lost"] > 0 or fields["duplicate_effects"] > 0 or fields["bad_rows"] > 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
