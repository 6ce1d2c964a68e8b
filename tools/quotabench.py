"""What the shared rate limits (shared/quota.py) cost the database, in the shapes the stages use
them: a batch of keys that each need a slot (notify's batch, intake's tick of clients past their
grace), the same keys answered from memory (won slots, grace), and for scale the unordered
insert of as many small documents that every stage already does per batch.

    .venv/bin/python -m tools.quotabench [--uri URI] [--batch 50] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from pymongo import AsyncMongoClient

from shared.quota import WindowQuota
from tools.dbbench import DEFAULT_URI


async def run(uri: str, batch: int, seconds: float) -> list[tuple[str, float, float]]:
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(uri, tz_aware=True)
    name = f"quotabench_{uuid.uuid4().hex[:8]}"
    db = client[name]
    rows: list[tuple[str, float, float]] = []
    try:
        quota = WindowQuota(db["slots"], limit=8, window_seconds=3600)
        now = datetime.now(UTC)
        keys_done, calls, began = 0, 0, time.monotonic()
        while time.monotonic() - began < seconds:
            keys = [uuid.uuid4().hex for _ in range(batch)]
            assert all(await quota.take_many(keys, now))
            keys_done, calls = keys_done + batch, calls + 1
        took = time.monotonic() - began
        rows.append(
            (f"take_many, {batch} new keys (one slot each)", keys_done / took, took / calls)
        )

        graced = WindowQuota(db["graced"], limit=600, window_seconds=6, grace=5)
        keys = [uuid.uuid4().hex for _ in range(batch)]
        count, began = 0, time.monotonic()
        while time.monotonic() - began < min(seconds, 2.0):
            for key in keys:
                graced.take_local(key, now)
                graced._windows.pop(f"{key}|{graced.window_of(now)}", None)  # stays in grace
            count += batch
        took = time.monotonic() - began
        rows.append(("take_local within grace (memory only)", count / took, took / (count / batch)))

        docs_done, calls, began = 0, 0, time.monotonic()
        while time.monotonic() - began < seconds:
            await db["baseline"].insert_many(
                [{"_id": uuid.uuid4().hex, "expires": now} for _ in range(batch)], ordered=False
            )
            docs_done, calls = docs_done + batch, calls + 1
        took = time.monotonic() - began
        rows.append((f"insert_many of {batch} small documents", docs_done / took, took / calls))
    finally:
        await client.drop_database(name)
        await client.close()
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.quotabench", description=__doc__)
    parser.add_argument("--uri", default=DEFAULT_URI)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args(argv)
    rows = asyncio.run(run(args.uri, args.batch, args.seconds))
    print(f"| {'shape':<44} | {'per second':>10} | {'ms per call':>11} |")
    print(f"|{'-' * 46}|{'-' * 12}|{'-' * 13}|")
    for shape, rate, per_call in rows:
        print(f"| {shape:<44} | {rate:>10.0f} | {per_call * 1000:>11.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
