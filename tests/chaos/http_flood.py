"""The HTTP flood: send the generated requests, count the answers by kind, and check that every
service is still alive and ready afterwards."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import httpx
from hypothesis import strategies as st

from shared.topics import SERVICES
from tests.chaos.credentials import sign
from tests.chaos.http_cases import RAW_CASES, all_cases
from tests.chaos.http_strategies import HttpCase, generate
from tests.chaos.personal_data import Person, request_body
from tests.support.services import ServiceSet

# --- sending, counting ----------------------------------------------------------------------------


@dataclass
class HttpTally:
    tried: int = 0
    by_class: Counter[str] = field(default_factory=Counter)  # 2xx, 4xx, 5xx, other, no_answer
    by_kind: dict[str, Counter[str]] = field(default_factory=dict)
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)  # samples of 5xx / other / no answer
    not_sent: int = 0  # drawn requests the HTTP client itself refused to send

    def merge(self, other: HttpTally) -> None:
        self.tried += other.tried
        self.by_class.update(other.by_class)
        for kind, counts in other.by_kind.items():
            self.by_kind.setdefault(kind, Counter()).update(counts)
        self.statuses.update(other.statuses)
        self.failures += other.failures[: max(0, 40 - len(self.failures))]
        self.not_sent += other.not_sent

    def add(self, kind: str, outcome: str, status: int, note: str) -> None:
        self.tried += 1
        self.by_class[outcome] += 1
        self.by_kind.setdefault(kind, Counter())[outcome] += 1
        if status:
            self.statuses[status] += 1
        if outcome not in ("2xx", "3xx", "4xx") and len(self.failures) < 40:
            self.failures.append(note)


def _classify(status: int) -> str:
    if 200 <= status < 300:
        return "2xx"
    if 400 <= status < 500:
        return "4xx"
    if status >= 500:
        return "5xx"
    if 300 <= status < 400:
        # FastAPI's redirect to the canonical path ("/v1/requests/" → "/v1/requests"), which
        # then answers 4xx itself: counted apart, not as a failure.
        return "3xx"
    return "other"


async def _chunks(body: bytes, size: int = 16_384) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


async def send_cases(
    services: ServiceSet, cases: Sequence[HttpCase], *, concurrency: int = 12
) -> HttpTally:
    tally = HttpTally()
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:

        async def one(case: HttpCase) -> None:
            headers = list(case.headers)
            if case.signed:
                signed = sign(case.body or b"")
                names = {k.lower() for k, _ in headers}
                headers = [(k, v.encode()) for k, v in signed.items() if k.lower() not in names]
                headers += list(case.headers)
            url = services.url(case.service) + case.path
            content: bytes | AsyncIterator[bytes] | None = case.body
            kind = case.kind
            if case.body and len(case.body) > 60_000 and len(case.body) % 2:
                content, kind = _chunks(case.body), f"{kind}_chunked"  # no Content-Length
            async with gate:
                try:
                    answer = await http.request(
                        case.method,
                        url,
                        headers=[(k.encode(), v) for k, v in headers],
                        content=content,
                    )
                except (httpx.LocalProtocolError, httpx.InvalidURL, UnicodeEncodeError):
                    tally.not_sent += 1
                    return
                except httpx.HTTPError as exc:
                    tally.add(
                        kind,
                        "no_answer",
                        0,
                        f"{case.method} {case.path[:80]}: {type(exc).__name__}",
                    )
                    return
            status = answer.status_code
            tally.add(
                kind,
                _classify(status),
                status,
                f"{status} {kind} {case.method} {case.path[:80]}: {answer.text[:200]}",
            )

        await asyncio.gather(*(one(c) for c in cases))
    return tally


async def send_raw(services: ServiceSet, tally: HttpTally) -> None:
    """Each raw case to each service on a fresh connection; the status line is read back."""
    for service in SERVICES:
        for raw in RAW_CASES:
            outcome, status, note = "no_answer", 0, f"raw {raw[:30]!r} → {service}: closed"
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", services.port(service))
                try:
                    writer.write(raw)
                    await writer.drain()
                    line = await asyncio.wait_for(reader.readline(), timeout=10)
                finally:
                    writer.close()
            except (OSError, TimeoutError):
                line = b""
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                status = int(parts[1])
                outcome = _classify(status)
                note = f"raw {raw[:30]!r} → {service}: {status}"
            tally.add("raw_protocol", outcome, status, note)


async def alive_and_ready(services: ServiceSet) -> dict[str, bool]:
    """Per service: the process still runs and /readyz answers 200."""
    out: dict[str, bool] = {}
    async with httpx.AsyncClient(timeout=10) as http:
        for service in SERVICES:
            proc = services.procs.get(service)
            running = proc is not None and proc.poll() is None
            ready = False
            if running:
                try:
                    ready = (await http.get(f"{services.url(service)}/readyz")).status_code == 200
                except httpx.HTTPError:
                    ready = False
            out[service] = running and ready
    return out


@dataclass
class HttpFlood:
    tally: HttpTally
    alive: dict[str, bool]
    seconds: float


# Every kind of generated request; the flood sends each at least once, whatever the seed.
KINDS = frozenset(
    {
        "json_mutated",
        "json_junk",
        "bytes_junk",
        "oversized",
        "content_type",
        "path_query",
        "partner_unsigned_junk",
        "partner_json_mutated",
        "partner_json_junk",
        "partner_bytes_junk",
        "partner_oversized",
        "open311_get",
        "open311_post_urlencoded",
        "open311_post_multipart",
        "verify_decision",
        "survey",
        "command_summary",
        "stray",
    }
)


async def _cover_every_kind(
    services: ServiceSet,
    tally: HttpTally,
    strategy: st.SearchStrategy[HttpCase],
    seed: int,
    rounds: int = 40,
) -> None:
    """Draw more (fresh seeds) and send only the kinds the main draw happened to miss: the rarer
    kinds come up about once in a hundred draws, so a small flood can miss one."""
    for round_ in range(rounds):
        missing = KINDS - set(tally.by_kind)
        if not missing:
            return
        drawn = await asyncio.to_thread(generate, strategy, 300, seed=seed + 7919 * (round_ + 1))
        found = [case for case in drawn if case.kind in missing]
        firsts = list({case.kind: case for case in found}.values())
        tally.merge(await send_cases(services, firsts))
    missing = KINDS - set(tally.by_kind)
    if missing:
        raise AssertionError(f"the case generator never drew {sorted(missing)}")


async def http_flood(services: ServiceSet, count: int, *, seed: int, citizen: Person) -> HttpFlood:
    """At least ``count`` generated requests answered (plus the raw cases): a few draws the
    HTTP client itself refuses to send (an invalid URL, a header it will not encode) are
    replaced by more draws."""
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=services.url("intake"), timeout=30) as http:
        first = await http.post("/v1/requests", json=request_body(citizen))
        first.raise_for_status()
    known_id, known_token = first.json()["request_id"], first.json()["tracking_token"]
    cases = await asyncio.to_thread(
        generate, all_cases(request_body(citizen), known_id, known_token), count, seed=seed
    )
    tally = await send_cases(services, cases)
    round_ = 1
    while tally.tried < count:
        more = await asyncio.to_thread(
            generate,
            all_cases(request_body(citizen), known_id, known_token),
            2 * (count - tally.tried),
            seed=seed + 1000 * round_,
        )
        extra = await send_cases(services, more[: count - tally.tried])
        tally.merge(extra)
        round_ += 1
    await _cover_every_kind(
        services, tally, all_cases(request_body(citizen), known_id, known_token), seed
    )
    await send_raw(services, tally)
    return HttpFlood(tally, await alive_and_ready(services), time.monotonic() - started)
