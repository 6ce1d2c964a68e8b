"""Re-drive: what the re-published copy of a dead letter carries."""

from __future__ import annotations

import pytest

from shared.settings import ServiceSettings
from tools.redrive import REDRIVEN_FROM, group_id, redriven_headers

pytestmark = pytest.mark.unit


def test_the_copy_keeps_the_original_headers_and_drops_the_dead_letter_annotations() -> None:
    headers = [
        ("ce_id", b"abc"),
        ("ce_type", b"city.help.request.verified.v1"),
        ("x-department", b"\xff raw bytes"),
        ("dlq_reason", b"unknown_leg"),
        ("dlq_origin_topic", b"help.status"),
        ("notification_id", b"n-1"),
        ("notify_channel", b"sms"),
        (REDRIVEN_FROM, b"help.dlq.route:0:1"),
        ("empty", None),
    ]
    copy = redriven_headers(headers, source="help.dlq.route:2:17")
    assert copy == [
        ("ce_id", b"abc"),
        ("ce_type", b"city.help.request.verified.v1"),
        ("x-department", b"\xff raw bytes"),
        ("empty", b""),
        (REDRIVEN_FROM, b"help.dlq.route:2:17"),
    ]


def test_each_filter_remembers_its_own_position() -> None:
    settings = ServiceSettings(TOPIC_PREFIX="t1.")
    assert group_id(settings, "route", None) == "t1.cityhelp-redrive-route"
    assert group_id(settings, "route", "unknown_leg") == "t1.cityhelp-redrive-route-unknown_leg"
