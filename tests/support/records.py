"""Records the unit and component tests start from, written out once: a dispatch job, a
message for a channel and a stored request, each valid and plain, changed per test by keyword."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from services.notify.channels import Outbound
from shared.schemas import DispatchJob

T0 = datetime(2026, 1, 9, 14, 0, tzinfo=UTC)


def dispatch_job(**changes: Any) -> DispatchJob:
    """A medical team's job for an elderly, chronically ill citizen in Jinshui (P2, green
    channel), dispatched five seconds after submission; ``changes`` replace its fields."""
    fields: dict[str, Any] = {
        "leg_id": "r-1:medical:1",
        "request_id": "r-1",
        "department": "medical",
        "team_id": "medical-jinshui-1",
        "priority": "P2",
        "green_channel": True,
        "category": "medical",
        "description": "需要胰岛素",
        "contact": {"phone": "+8613800138000"},
        "location": {"district": "jinshui", "lat": 34.77, "lon": 113.66},
        "special_groups": ["elderly", "chronic_illness"],
        "submitted_at": T0,
        "dispatched_at": T0 + timedelta(seconds=5),
        "acknowledge_by": T0 + timedelta(hours=1),
        "resolve_by": T0 + timedelta(hours=24),
        "rule_version": "1",
        "rule_id": "medical-default",
    }
    return DispatchJob.model_validate({**fields, **changes})


def outbound(
    event: str = "received",
    language: str = "ru",
    text: str = "Помощь Чжэнчжоу: ваша заявка получена",
) -> Outbound:
    """One message as notify hands it to a channel: by default a receipt in Russian."""
    return Outbound(
        notification_id="n-1",
        request_id="R-1",
        event=event,
        language=language,
        phone="+8613800138000",
        text=text,
    )


def stored_request() -> dict[str, Any]:
    """A request as intake keeps it once verified and dispatched, personal data included. The
    citizen wrote the district as "金水"; verification placed it as ``jinshui``."""
    return {
        "_id": "r1",
        "request_id": "r1",
        "status": "dispatched",
        "priority": "P2",
        "category": "medical",
        "departments": ["medical"],
        "duplicate_of": None,
        "description": "需要胰岛素",
        "contact": {"name": "王女士", "phone": "+8613800138000"},
        "location": {"district": "金水", "address": "金水路 1 号", "lat": 34.77, "lon": 113.66},
        "district": "jinshui",
        "submitted_at": datetime(2022, 1, 9, 6, 0, tzinfo=UTC),
        "updated_at": datetime(2022, 1, 9, 6, 5, tzinfo=UTC),
        "timeline": [
            {"event_id": "e1", "status": "submitted", "at": "t1", "actor": "intake/web"},
            {"event_id": "e2", "status": "verified", "at": "t2", "actor": "verify", "reason": "ok"},
            {"event_id": "e3", "status": "dispatched", "at": "t3", "reason": "default:medical"},
        ],
    }
