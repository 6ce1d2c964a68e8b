"""A small benchmark of the database server the stages use (FerretDB or MongoDB), through
PyMongo's async client, in the shapes the stages use it: single writes and reads by ``_id``,
unordered batches, bulk updates, ``$in`` lookups, a range on an indexed field, and several
clients writing batches at once. ~1 KB documents; each phase is bounded in time and every call
in time (some bulk forms make no progress on FerretDB 1.24: such a phase reports ``hung``).

    .venv/bin/python -m tools.dbbench [--uri URI] [--label NAME] [--json out.json]
    .venv/bin/python -m tools.dbbench --compare a.json b.json c.json   # a Markdown table

docs/database.md has the figures and how they were taken.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from pymongo import AsyncMongoClient, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import PyMongoError

from tools.dbbench_results import (
    Document,
    PhaseResult,
    format_comparison,
    format_table,
    make_doc,
)

Collection = AsyncCollection[Document]
Step = Callable[[int], Awaitable[int]]

DEFAULT_URI = "mongodb://127.0.0.1:27017/?directConnection=true&retryWrites=false"


# ---------------------------------------------------------------- measuring


def say(text: str) -> None:
    print(f"[dbbench] {text}", flush=True)


def client_for(uri: str, timeout: float) -> AsyncMongoClient[Document]:
    return AsyncMongoClient(
        uri,
        appname="cityhelp-dbbench",
        serverSelectionTimeoutMS=5000,
        connectTimeoutMS=3000,
        socketTimeoutMS=int((timeout + 10) * 1000),  # a backstop; wait_for bounds every call
    )


async def timed_phase(
    name: str, step: Step, *, seconds: float, call_timeout: float, unit: str = "docs"
) -> PhaseResult:
    """Calls ``step(i)`` (which returns how many documents it handled) for ``seconds``, each call
    bounded by ``call_timeout``; a call that times out ends the phase as hung."""
    result = PhaseResult(name, unit=unit)
    start = time.perf_counter()
    i = 0
    while time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        try:
            n = await asyncio.wait_for(step(i), call_timeout)
        except TimeoutError:
            result.hung = True
            result.note = f"a call made no progress in {call_timeout:.0f} s"
            result.seconds = t0 - start
            say(f"{name}: HUNG (no answer in {call_timeout:.0f} s) after {result.calls} calls")
            return result
        except PyMongoError as exc:
            result.errors += 1
            result.note = f"{type(exc).__name__}: {str(exc)[:60]}"
            if result.errors >= 20:
                break
            continue
        finally:
            i += 1
        result.latencies.append(time.perf_counter() - t0)
        result.calls += 1
        result.docs += n
    result.seconds = time.perf_counter() - start
    say(f"{name}: {result.rate:,.0f} {unit}/s ({result.calls} calls in {result.seconds:.1f} s)")
    return result


async def concurrent_insert_many(
    uri: str, db_name: str, *, clients: int, seconds: float, batch: int, call_timeout: float
) -> PhaseResult:
    """``clients`` clients (connections of their own, like stage processes) each writing
    unordered batches into one collection for ``seconds``; progress every 10 s."""
    name = f"insert_many x{clients} clients, {seconds:.0f} s"
    result = PhaseResult(name)
    opened = [client_for(uri, call_timeout) for _ in range(clients)]
    start = time.perf_counter()
    stop_at = start + seconds

    async def worker(w: int, client: AsyncMongoClient[Document]) -> None:
        coll: Collection = client[db_name]["stage"]
        n = 0
        while time.perf_counter() < stop_at and not result.hung:
            docs = [make_doc(f"c{clients}-{w}-{n + k}", n + k) for k in range(batch)]
            t0 = time.perf_counter()
            try:
                await asyncio.wait_for(coll.insert_many(docs, ordered=False), call_timeout)
            except TimeoutError:
                result.hung = True
                result.note = f"a call made no progress in {call_timeout:.0f} s"
                return
            except PyMongoError as exc:
                result.errors += 1
                result.note = f"{type(exc).__name__}: {str(exc)[:60]}"
                continue
            result.latencies.append(time.perf_counter() - t0)
            result.calls += 1
            result.docs += batch
            n += batch

    async def progress() -> None:
        last, last_t = 0, start
        while True:
            await asyncio.sleep(10)
            now = time.perf_counter()
            say(
                f"{name}: {now - start:.0f} s, {result.docs} docs, "
                f"{(result.docs - last) / (now - last_t):,.0f} docs/s in the last 10 s"
            )
            last, last_t = result.docs, now

    reporter = asyncio.create_task(progress())
    try:
        await asyncio.gather(*(worker(w, c) for w, c in enumerate(opened)))
    finally:
        reporter.cancel()
        for c in opened:
            await c.close()
    result.seconds = time.perf_counter() - start
    say(f"{name}: {result.rate:,.0f} docs/s ({result.calls} calls, {result.errors} errors)")
    return result


async def run(args: argparse.Namespace) -> list[Document]:
    client = client_for(args.uri, args.timeout)
    db = client[args.database]
    seconds, timeout, batch = args.seconds, args.timeout, 100
    rng = random.Random(1)  # noqa: S311 - picks ids, not secrets
    results: list[PhaseResult] = []
    try:
        await asyncio.wait_for(client.admin.command("ping"), timeout)
        await asyncio.wait_for(client.drop_database(args.database), timeout)
        single: Collection = db["single"]
        many: Collection = db["many"]
        await asyncio.wait_for(many.create_index("seq"), timeout)
        say(f"{args.label}: {args.uri}, {seconds:.0f} s per phase, {timeout:.0f} s per call")

        async def insert_one(i: int) -> int:
            await single.insert_one(make_doc(f"s-{i}", i))
            return 1

        results.append(
            await timed_phase("insert_one", insert_one, seconds=seconds, call_timeout=timeout)
        )
        singles = max(results[-1].calls, 1)

        async def update_one(i: int) -> int:
            key = f"s-{rng.randrange(singles)}"
            r = await single.update_one({"_id": key}, {"$set": {"status": "verified", "n": i}})
            return r.matched_count

        results.append(
            await timed_phase(
                "update_one by _id", update_one, seconds=seconds, call_timeout=timeout
            )
        )

        async def find_one(i: int) -> int:
            return 1 if await single.find_one({"_id": f"s-{rng.randrange(singles)}"}) else 0

        results.append(
            await timed_phase("find_one by _id", find_one, seconds=seconds, call_timeout=timeout)
        )

        async def insert_many(i: int) -> int:
            docs = [make_doc(f"m-{i * batch + k}", i * batch + k) for k in range(batch)]
            r = await many.insert_many(docs, ordered=False)
            return len(r.inserted_ids)

        results.append(
            await timed_phase(
                f"insert_many of {batch}, unordered",
                insert_many,
                seconds=seconds,
                call_timeout=timeout,
            )
        )
        stored = max(results[-1].docs, batch)
        # A query the server answers by scanning costs in proportion to the collection's size.
        on_stored = f"collection of {stored:,} docs"

        async def find_in(i: int) -> int:
            ids = [f"m-{rng.randrange(stored)}" for _ in range(batch)]
            return len(await many.find({"_id": {"$in": ids}}).to_list())

        results.append(
            await timed_phase(
                f"find _id $in {batch} ids", find_in, seconds=seconds, call_timeout=timeout
            )
        )
        results[-1].note = results[-1].note or on_stored

        async def find_range(i: int) -> int:
            low = rng.randrange(max(stored - batch, 1))
            return len(await many.find({"seq": {"$gte": low, "$lt": low + batch}}).to_list())

        results.append(
            await timed_phase(
                f"find seq range of {batch} (indexed)",
                find_range,
                seconds=seconds,
                call_timeout=timeout,
            )
        )
        results[-1].note = results[-1].note or on_stored

        for clients in args.clients:
            results.append(
                await concurrent_insert_many(
                    args.uri,
                    args.database,
                    clients=clients,
                    seconds=args.concurrent_seconds,
                    batch=batch,
                    call_timeout=timeout,
                )
            )

        # Last: on FerretDB 1.24 a hung bulk update may keep the server busy after the timeout.
        bulk = args.bulk_size

        async def bulk_update(i: int) -> int:
            ops = [
                UpdateOne({"_id": f"m-{rng.randrange(stored)}"}, {"$set": {"n": i}})
                for _ in range(bulk)
            ]
            r = await many.bulk_write(ops, ordered=False)
            return r.matched_count

        results.append(
            await timed_phase(
                f"bulk_write of {bulk} UpdateOne by _id",
                bulk_update,
                seconds=seconds,
                call_timeout=timeout,
            )
        )
        if not args.keep and not any(r.hung for r in results):
            await asyncio.wait_for(client.drop_database(args.database), timeout)
    finally:
        await client.close()
    return [r.summary() for r in results]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tools.dbbench", description=__doc__.split("\n")[0])
    p.add_argument("--uri", default=os.environ.get("MONGODB_URI", DEFAULT_URI))
    p.add_argument("--database", default="dbbench", help="dropped at the start and at the end")
    p.add_argument("--label", default="run", help="the run's name in --json and --compare")
    p.add_argument("--seconds", type=float, default=5.0, help="per phase (default 5)")
    p.add_argument("--timeout", type=float, default=20.0, help="per call (default 20)")
    p.add_argument("--bulk-size", type=int, default=50, help="UpdateOnes per bulk_write")
    p.add_argument(
        "--clients",
        type=lambda s: [int(x) for x in s.split(",") if x],
        default=[2, 4],
        help="concurrent insert_many phases, comma-separated client counts (default 2,4; '' none)",
    )
    p.add_argument("--concurrent-seconds", type=float, default=60.0)
    p.add_argument("--keep", action="store_true", help="do not drop the database at the end")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--compare", type=Path, nargs="+", help="print a Markdown table of --json files")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.compare:
        runs = [json.loads(path.read_text()) for path in args.compare]
        print(format_comparison(runs))
        return 0
    summaries = asyncio.run(run(args))
    print()
    print(f"{args.label}:")
    print(format_table(summaries))
    if args.json:
        args.json.write_text(json.dumps({"label": args.label, "results": summaries}, indent=1))
    return 1 if any(s["hung"] for s in summaries) else 0


if __name__ == "__main__":
    sys.exit(main())
