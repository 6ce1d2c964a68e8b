"""Route's HTTP API, the command centre's read-only view: live totals, no personal data.

``GET /v1/command/summary`` answers the number of requests by status, category and district.
It needs an ``X-Command-Key``; route keeps only the keys' SHA-256 digests
(``ROUTE_COMMAND_KEYS``), compares in constant time and never logs the key. Verifier keys
(verify's review queue) are a different set: one role's key opens nothing of the other's.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Header
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from shared import requests_store
from shared.db import Database
from shared.envelope import utcnow
from shared.http import problem
from shared.keys import KeyDigests

logger = logging.getLogger(__name__)

# Only these fields are read: nothing that identifies or locates a person.
FIELDS = ("status", "category", "location.district")


def summarise(docs: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Totals by status, category and district of request documents (pure)."""
    by_status: Counter[str] = Counter()
    by_category: Counter[str] = Counter()
    by_district: Counter[str] = Counter()
    total = 0
    for doc in docs:
        total += 1
        by_status[str(doc.get("status") or "unknown")] += 1
        by_category[str(doc.get("category") or "unknown")] += 1
        # The district verify normalised; the citizen's own words only before verification.
        location = doc.get("location") or {}
        by_district[str(doc.get("district") or location.get("district") or "unknown")] += 1
    return {
        "total": total,
        "by_status": dict(sorted(by_status.items())),
        "by_category": dict(sorted(by_category.items())),
        "by_district": dict(sorted(by_district.items())),
    }


def build_router(db: Database, keys: KeyDigests) -> APIRouter:
    router = APIRouter(tags=["command centre"])

    @router.get("/v1/command/summary", summary="Totals by status, category and district")
    async def summary(
        x_command_key: Annotated[str | None, Header(max_length=200)] = None,
    ) -> JSONResponse:
        desk = keys.find(x_command_key)
        if desk is None:
            return problem(
                401,
                "unauthorised",
                "A command-centre key is required (X-Command-Key).",
                headers={"WWW-Authenticate": "X-Command-Key"},
            )
        # A whole-collection read, on a rare request (a dashboard refresh), three small fields.
        docs = await requests_store.scan(db, FIELDS)
        logger.info("command summary served", extra={"desk": desk, "total": len(docs)})
        body = {**summarise(docs), "generated_at": utcnow()}
        return JSONResponse(jsonable_encoder(body))

    return router
