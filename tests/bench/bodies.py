"""Help requests for the bench: ordinary P3 needs that verify accepts (distinct phone and text per
request, so neither the per-phone rate limit, the flood rule nor the duplicate rule applies, and a
district, which medical, food and transport requests need) and P1 labour requests.

The same shapes are built in tests/bench/post.lua for wrk; keep the two alike.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from shared.schemas import HelpRequest, SubmittedRequest

DISTRICTS = ("jinshui", "erqi", "zhongyuan", "guancheng", "huiji", "zhengdong")
# P3 needs (config/triage.toml): no special group and none of the priority lane's words.
NEEDS = (
    ("food_supply", "小区封控，家里断粮了，需要送米面油和蔬菜", "zh"),
    ("medical", "Need blood pressure medicine for my father, two days left", "en"),
    ("transport", "Нужен пропуск для поездки на работу через блокпост", "ru"),
    ("health_code", "健康码变黄了，核酸结果都是阴性，需要核实", "zh"),
    ("education", "孩子网课没有设备，学校要求明天开始上课", "zh"),
)
P1_TEXT = "临产，羊水破了，要生了，需要车送医院"


def phone(n: int) -> str:
    """A distinct valid Chinese mobile number per ``n`` (139 + 8 digits)."""
    return f"139{n % 10**8:08d}"


def p3_body(n: int) -> dict[str, Any]:
    category, text, language = NEEDS[n % len(NEEDS)]
    return {
        "category": category,
        "description": f"{text}（{n}）",
        "contact": {"name": "居民", "phone": phone(n)},
        "location": {"district": DISTRICTS[n % len(DISTRICTS)], "address": f"{n % 300 + 1}号院"},
        "language": language,
    }


def p1_body(n: int) -> dict[str, Any]:
    """A woman in labour: P1 by the ``labour`` keyword rule, green channel, medical."""
    return {
        "category": "medical",
        "description": f"{P1_TEXT}（{n}）",
        "contact": {"name": "居民", "phone": phone(n)},
        "location": {"district": DISTRICTS[n % len(DISTRICTS)], "address": f"{n % 300 + 1}号院"},
        "special_groups": ["pregnant"],
        "language": "zh",
    }


def submitted(request_id: str, body: dict[str, Any]) -> SubmittedRequest:
    """The value intake would publish for ``body`` (for records put straight on the topic)."""
    return SubmittedRequest(
        request_id=request_id,
        submitted_at=datetime.now(UTC),
        channel="web",
        client_id=f"web:bench-{request_id[-12:]}",
        tracking_token_hash=uuid.uuid4().hex + uuid.uuid4().hex,
        request=HelpRequest.model_validate(body),
    )


def record_size(samples: int = 50) -> int:
    """The mean size in bytes of a serialized submitted record's value, as intake writes it."""
    sizes = [
        len(submitted(str(uuid.uuid4()), p3_body(10**7 + i)).model_dump_json().encode())
        for i in range(samples)
    ]
    return round(sum(sizes) / len(sizes))
