"""``python -m services.route.dryrun --rules <candidate.toml> [--limit N]``

Replays the verified requests stored in the database through the current rule file and a
candidate, and prints which requests would have gone to other departments (request id,
category, current → candidate departments, rule ids), then a summary line. Reads only; the
database and rule file come from the route settings (``MONGODB_URI``, ``MONGODB_DATABASE``,
``CITYHELP_CONFIG_DIR``, ``ROUTE_RULES_FILE``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TextIO

from pymongo import MongoClient

from services.route import domain
from services.route.settings import RouteSettings
from shared.db import Document
from shared.requests_store import COLLECTION, DECISIONS, merged, projection

# A request counts as verified once its timeline has this step (later steps keep it).
_VERIFIED = "verified"
_FIELDS = projection("category", "description", "special_groups", "location", "district")


def routing_input(doc: Document) -> domain.RoutingInput | None:
    """What routing looks at, from a stored request record; None if it was never verified."""
    if not any(entry.get("status") == _VERIFIED for entry in doc.get("timeline", [])):
        return None
    district = doc.get("district")  # verification's code, never the citizen's text
    return domain.RoutingInput(
        category=str(doc.get("category", "")),
        description=str(doc.get("description", "")),
        special_groups=tuple(doc.get("special_groups") or ()),
        district=str(district).lower() if district else None,
    )


def stored_requests(
    settings: RouteSettings, limit: int | None
) -> Iterator[tuple[str, domain.RoutingInput]]:
    """Verified requests: the ``requests`` collection with verify's decisions folded in, as
    every reader sees a request (a full scan: an offline tool)."""
    client: MongoClient[Document] = MongoClient(
        settings.mongodb_uri, tz_aware=True, serverSelectionTimeoutMS=5000
    )
    try:
        found = 0
        db = client[settings.mongodb_database]
        cursor = db[COLLECTION].find({}, {**_FIELDS, "timeline": 1})
        for record in cursor:
            decision = db[DECISIONS].find_one({"_id": record["_id"]}, {"fields": 1, "entry": 1})
            doc = merged(record, decision, None)
            subject = routing_input(doc)
            if subject is None:
                continue
            yield str(doc["_id"]), subject
            found += 1
            if limit is not None and found >= limit:
                break
    finally:
        client.close()


def main(argv: Sequence[str] | None = None, *, out: TextIO = sys.stdout) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.route.dryrun",
        description="Show who would have received stored requests under candidate rules.",
    )
    parser.add_argument("--rules", required=True, type=Path, help="candidate routing.toml")
    parser.add_argument("--limit", type=int, default=None, help="at most N verified requests")
    args = parser.parse_args(argv)
    settings = RouteSettings()
    current = domain.load_rules(settings.config_dir / settings.rules_file)
    try:
        candidate = domain.load_rules(args.rules)
    except (OSError, ValueError, KeyError) as exc:
        print(f"cannot read candidate rules: {exc}", file=sys.stderr)
        return 2
    compared, differences = domain.compare(
        current, candidate, stored_requests(settings, args.limit)
    )
    for difference in differences:
        print(domain.describe(difference), file=out)
    print(
        f"summary: {compared} verified requests replayed, {len(differences)} routed differently"
        f" (rules {current.version} -> {candidate.version})",
        file=out,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
