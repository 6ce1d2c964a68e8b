"""``python -m tools.topics_cli``: create the contract's topics on the configured broker."""

from __future__ import annotations

import asyncio
import sys

from shared.kafka import ensure_topics
from shared.settings import ServiceSettings


def main() -> int:
    settings = ServiceSettings()
    prefix = f" with prefix '{settings.topic_prefix}'" if settings.topic_prefix else ""
    print(f"[topics] ensuring contract topics on {settings.kafka_bootstrap}{prefix}", flush=True)
    created = asyncio.run(ensure_topics(settings))
    for name in created:
        print(f"[topics] created {name}", flush=True)
    print(f"[topics] ready ({len(created)} created, the rest existed)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
