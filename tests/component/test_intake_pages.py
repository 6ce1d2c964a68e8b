"""Intake's citizen pages on an in-memory broker and repository: the form files through the
JSON API's path (same validation, same publish, same idempotency), errors come back next to
their fields, a form without its CSRF token is refused, and tracking codes resolve."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import httpx
import pytest
from faststream.kafka import KafkaBroker, TestKafkaBroker

from services.intake import handlers, tracking
from services.intake.app import build_app
from services.intake.settings import IntakeSettings
from shared.topics import Topic
from tests.component.test_intake_channels import NAMES, PREFIX, MemoryRepository, watch

pytestmark = pytest.mark.component

Seen = dict[str, list[tuple[bytes, dict[str, str]]]]
FORM = {
    "category": "food_supply",
    "special_groups": "elderly",
    "district": "erqi",
    "phone": "139 0000 0001",
    "description": "家里没有蔬菜了",
}


class CodeRepository(MemoryRepository):
    """Tracking codes on dictionaries; ``taken`` codes belong to another request already."""

    def __init__(self) -> None:
        super().__init__()
        self.codes: dict[str, str] = {}
        self.code_of_request: dict[str, str] = {}

    async def code_of(self, request_id: str) -> str | None:
        return self.code_of_request.get(request_id)

    async def request_of_code(self, code: str) -> str | None:
        return self.codes.get(code)

    async def claim_code(self, code: str, request_id: str, *, at: datetime) -> bool:
        if code in self.codes:
            return False
        self.codes[code] = request_id
        return True

    async def assign_code(self, request_id: str, code: str, *, at: datetime) -> str:
        return self.code_of_request.setdefault(request_id, code)


@pytest.fixture
async def site() -> AsyncIterator[tuple[httpx.AsyncClient, CodeRepository, Seen]]:
    broker = KafkaBroker()
    repo = CodeRepository()
    app = build_app(
        IntakeSettings(topic_prefix=PREFIX), broker=broker, create_topics=False, repo=repo
    )
    seen: Seen = {}
    for topic in (Topic.SUBMITTED, Topic.SUBMITTED_PRIORITY):
        watch(broker, NAMES(topic), seen)
    async with TestKafkaBroker(broker):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://intake") as http:
            yield http, repo, seen


def submitted(seen: Seen) -> list[dict[str, Any]]:
    return [
        json.loads(v)
        for topic in (Topic.SUBMITTED, Topic.SUBMITTED_PRIORITY)
        for v, _ in seen.get(NAMES(topic), [])
    ]


async def open_form(http: httpx.AsyncClient, lang: str = "zh") -> dict[str, str]:
    page = await http.get(f"/?lang={lang}")
    assert page.status_code == 200
    fields = dict(re.findall(r'name="(csrf_token|idempotency_key)" value="([^"]+)"', page.text))
    assert set(fields) == {"csrf_token", "idempotency_key"}
    return fields


async def test_a_form_files_one_request_through_every_retry(
    site: tuple[httpx.AsyncClient, CodeRepository, Seen],
) -> None:
    http, repo, seen = site
    hidden = await open_form(http)
    first = await http.post("/", data={**FORM, **hidden})
    again = await http.post("/", data={**FORM, **hidden})
    assert first.status_code == again.status_code == 303
    assert first.headers["location"] == again.headers["location"]
    code = re.fullmatch(r"/track/([2-9A-Z]{8})\?lang=zh&sent=1", first.headers["location"])
    assert code
    values = submitted(seen)
    assert len(values) == 1  # the retry was answered from the receipt, not published again
    body = values[0]
    assert body["channel"] == "web"
    assert body["request"]["special_groups"] == ["elderly"]
    assert body["request"]["location"]["district"] == "erqi"
    assert repo.codes[code.group(1)] == body["request_id"]


async def test_errors_come_back_next_to_their_fields_in_the_page_language(
    site: tuple[httpx.AsyncClient, CodeRepository, Seen],
) -> None:
    http, _repo, seen = site
    hidden = await open_form(http, "ru")
    answer = await http.post(
        "/?lang=ru", data={**hidden, "category": "nonsense", "description": "  ", "phone": ""}
    )
    assert answer.status_code == 422
    for field in ("category", "phone", "description"):
        assert f'id="{field}-error"' in answer.text
    assert "Укажите номер телефона" in answer.text
    assert f'value="{hidden["idempotency_key"]}"' in answer.text  # the same key to retry with
    assert submitted(seen) == []


async def test_a_form_without_its_token_is_refused(
    site: tuple[httpx.AsyncClient, CodeRepository, Seen],
) -> None:
    http, _repo, seen = site
    hidden = await open_form(http)
    refused = await http.post("/", data={**FORM, "idempotency_key": hidden["idempotency_key"]})
    assert refused.status_code == 403
    http.cookies.clear()
    cross_site = await http.post("/", data={**FORM, **hidden})
    assert cross_site.status_code == 403
    assert submitted(seen) == []


async def test_a_taken_code_is_drawn_again(
    site: tuple[httpx.AsyncClient, CodeRepository, Seen], monkeypatch: pytest.MonkeyPatch
) -> None:
    http, repo, _seen = site
    repo.codes["AAAA2222"] = "another-request"
    draws = iter(["AAAA2222", "BBBB3333"])
    monkeypatch.setattr(tracking, "new_code", lambda: next(draws))
    ctx = http._transport.app.state.intake  # type: ignore[attr-defined]
    assert await handlers.tracking_code(ctx, "R-1") == "BBBB3333"
    assert await handlers.tracking_code(ctx, "R-1") == "BBBB3333"  # stored: not drawn again
    assert repo.codes == {"AAAA2222": "another-request", "BBBB3333": "R-1"}


@pytest.mark.parametrize(
    ("path", "status"),
    [("/track?code=abcd-0000", 400), ("/track?code=ABCD2345", 404), ("/track/ABCD2345", 404)],
)
async def test_lookups_of_bad_or_unknown_codes_say_so(
    site: tuple[httpx.AsyncClient, CodeRepository, Seen], path: str, status: int
) -> None:
    http, _repo, _seen = site
    answer = await http.get(path + ("&" if "?" in path else "?") + "lang=en")
    assert answer.status_code == status
    assert 'id="code-error"' in answer.text


async def test_pages_carry_the_security_headers(
    site: tuple[httpx.AsyncClient, CodeRepository, Seen],
) -> None:
    http, _repo, _seen = site
    for path in ("/", "/track", "/poster"):
        page = await http.get(path)
        assert page.status_code == 200
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert "<script>" not in page.text  # no inline script: the CSP would refuse it
        assert " style=" not in page.text
