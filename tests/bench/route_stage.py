"""Route alone, draining a backlog: ``python -m tests.bench.route_stage [--requests N]``.

Starts one route process against the stack in ``KAFKA_BOOTSTRAP`` and ``MONGODB_URI`` (a fresh
topic prefix and database), publishes N verified requests on ``help.requests.verified`` (the
same requests as ``tests.bench.notify_stage``, one department each) and waits until route has
finished every record. Then it prints the records drained per second, route's CPU seconds per
request (utime + stime from /proc), its database writes per request (inserted documents plus
other write commands, as ``make bench`` counts them) and the documents of each collection.
Prints figures and asserts nothing; the last line holds them all.
"""

from __future__ import annotations

import argparse
import asyncio
import os

from tests.bench.notify_stage import bench_records
from tests.bench.stage_run import drain
from tests.support.services import REPO, ServiceSet


def say(text: str) -> None:
    print(f"[route-stage] {text}", flush=True)


async def run(args: argparse.Namespace) -> None:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    uri = os.environ.get("MONGODB_URI", "mongodb://127.0.0.1:27017/?directConnection=true")
    services = ServiceSet(
        bootstrap, uri, REPO / ".run" / "bench-route", extra_env={"LOG_LEVEL": "WARNING"}
    )
    try:
        say(f"starting route (prefix {services.prefix}, database {services.database})")
        services.start("route")
        await asyncio.sleep(3)  # its consumers join their groups
        drained = await drain(
            services,
            "route",
            bench_records(services.prefix, args.requests, {"verified"}),
            bootstrap=bootstrap,
            uri=uri,
            timeout=args.timeout,
            say=say,
            profile_path=args.profile,
        )
        print("route_stage:" + drained.figures(args.requests), flush=True)
    finally:
        services.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.route_stage", description=__doc__)
    parser.add_argument("--requests", type=int, default=3000, help="requests (3000)")
    parser.add_argument("--profile", help="write a py-spy profile of route here")
    parser.add_argument("--timeout", type=float, default=600.0, help="drain wait (600 s)")
    asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
