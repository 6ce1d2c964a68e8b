"""What a running service's ``GET /metrics`` exports, read the way Prometheus reads it."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from tests.support.services import ServiceSet


async def samples(services: ServiceSet, service: str, name: str) -> list[Sample]:
    """The samples named ``name`` (a counter's ``…_total``, say) that ``service`` exports now."""
    async with httpx.AsyncClient(base_url=services.url(service), timeout=10) as http:
        text = (await http.get("/metrics")).text
    return [
        sample
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]
