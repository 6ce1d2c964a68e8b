"""What route's staff pages draw, pure: local times, a change signature for polling, and the
command centre's bar charts (inline SVG geometry, no outside library)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

LOCAL: Final = ZoneInfo("Asia/Shanghai")


def local_time(at: datetime | str | None) -> str:
    if not at:
        return ""
    when = datetime.fromisoformat(at) if isinstance(at, str) else at
    return when.astimezone(LOCAL).strftime("%Y-%m-%d %H:%M")


def signature(items: Sequence[Mapping[str, Any]], *fields: str) -> str:
    """A short digest of what a polled list shows, so the page replaces it only on change."""
    text = "|".join(",".join(str(i.get(f)) for f in fields) for i in items)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    value: int
    label: str


def bars(values: Sequence[int], labels: Sequence[str], *, width: int, height: int) -> list[Bar]:
    """Geometry of a bar chart (pure): bars side by side, scaled to the largest value."""
    top = max([1, *values])
    step = width / max(1, len(values))
    return [
        Bar(
            x=round(i * step + step * 0.1, 1),
            y=round(height - value / top * height, 1),
            width=round(step * 0.8, 1),
            height=round(value / top * height, 1),
            value=value,
            label=label,
        )
        for i, (value, label) in enumerate(zip(values, labels, strict=True))
    ]


def charts(activity: Mapping[str, Any]) -> dict[str, list[Bar]]:
    minutes = activity["requests_per_minute"]
    span = activity["breach_bucket_minutes"]
    breaches = activity["breaches"]
    return {
        "per_minute": bars(
            minutes, [str(len(minutes) - i) for i in range(len(minutes))], width=300, height=100
        ),
        "by_priority": bars(
            list(activity["open_by_priority"].values()),
            list(activity["open_by_priority"]),
            width=300,
            height=100,
        ),
        "breaches": bars(
            breaches,
            [str((len(breaches) - i) * span) for i in range(len(breaches))],
            width=300,
            height=100,
        ),
    }
