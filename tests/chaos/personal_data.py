"""Personal data: the citizens the floods submit as, and the check that no log line shows them."""

from __future__ import annotations

import contextlib
import json
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.topics import SERVICES
from tests.support.services import ServiceSet

# --- personal data: what the floods submit and the logs must never show -------------------------

_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
_GIVEN = "秀英桂兰玉梅建华志强晓明丽娟海燕春生国庆文静子涵雨萱浩然"
_STREETS = ("金水路", "花园路", "农业路", "中原路", "建设路", "大学路", "紫荆山路", "经三路")


@dataclass(frozen=True)
class Person:
    """One made-up citizen; every value is unique to the run, so a hit in a log is a leak."""

    name: str
    phone: str  # as submitted (one of many shapes)
    digits: str  # the national number, digits only
    address: str
    description: str

    def needles(self) -> list[str]:
        """Strings that must not appear in any log line."""
        return [
            self.name,
            self.phone,
            self.digits,
            f"+86{self.digits}",
            self.address,
            self.description,
        ]


def _fullwidth(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if c.isdigit() else c for c in text)


def people(count: int, *, seed: int) -> list[Person]:
    """``count`` citizens with mobile and landline numbers in the shapes phones arrive in."""
    rng = random.Random(seed)
    out: list[Person] = []
    for i in range(count):
        marker = "".join(rng.choice(_GIVEN) for _ in range(3))
        name = rng.choice(_SURNAMES) + "".join(rng.choice(_GIVEN) for _ in range(2)) + marker[:1]
        if i % 7 == 6:
            digits = f"03716{rng.randrange(10**6, 10**7)}"  # Zhengzhou landlines: 0371-6xxx xxxx
            phone = f"0371-{digits[4:8]} {digits[8:]}"
        else:
            digits = f"1{rng.choice('38')}{rng.randrange(10**8, 10**9)}"  # 13x, 18x: all assigned
            shapes = (
                digits,
                f"{digits[:3]} {digits[3:7]} {digits[7:]}",
                f"{digits[:3]}-{digits[3:7]}-{digits[7:]}",
                f"+86 {digits}",
                f"+86 {digits[:3]} {digits[3:7]} {digits[7:]}",
                _fullwidth(digits),
            )
            phone = shapes[i % len(shapes)]
        address = f"{rng.choice(_STREETS)}{rng.randrange(1, 999)}号{marker}小区{i}栋"
        description = f"家里没有蔬菜了，{marker}需要买菜，门牌{rng.randrange(10**5, 10**6)}"
        out.append(Person(name, phone, digits, address, description))
    return out


def request_body(person: Person, **change: Any) -> dict[str, Any]:
    """A valid help request for ``person`` (verified automatically: food, a real district)."""
    return {
        "category": "food_supply",
        "description": person.description,
        "contact": {"name": person.name, "phone": person.phone},
        "location": {"district": "jinshui", "address": person.address, "lat": 34.77, "lon": 113.66},
        "language": "zh",
        **change,
    }


_SEPARATORS = re.compile(r"[\s\-()（）]")


def personal_data_in_logs(log_files: Iterable[Path], citizens: Sequence[Person]) -> list[str]:
    """Every (file, line number, what) where a citizen's personal data shows in a log.

    Lines are searched as written, with JSON escapes undone, and with separators removed (a
    phone number split by spaces or dashes is still a phone number)."""
    needles = [(n, p) for p in citizens for n in p.needles()]
    digit_needles = [p.digits for p in citizens]
    found: list[str] = []
    for path in log_files:
        if not path.exists():
            continue
        for number, line in enumerate(path.read_text("utf-8", errors="replace").splitlines(), 1):
            texts = [line]
            with contextlib.suppress(ValueError):
                texts.append(json.dumps(json.loads(line), ensure_ascii=False))
            for text in texts:
                squeezed = _SEPARATORS.sub("", text)
                hits = {n for n, _ in needles if n in text}
                hits |= {d for d in digit_needles if d in squeezed}
                for hit in sorted(hits):
                    found.append(f"{path.name}:{number}: {hit[:12]}…")
    return sorted(set(found))


def log_files(services: ServiceSet) -> list[Path]:
    return [services.log_dir / f"{services.prefix}{s}.log" for s in SERVICES]
