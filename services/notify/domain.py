"""Notification rules: which lifecycle event tells the citizen what. Pure functions."""

from __future__ import annotations

from dataclasses import dataclass

from shared.envelope import derive_id
from shared.schemas import Language
from shared.topics import Topic, department_of

_EVENT_BY_TOPIC: dict[str, str] = {
    Topic.SUBMITTED.value: "received",
    Topic.VERIFIED.value: "verified",
    Topic.REJECTED.value: "rejected",
}

_TEXT: dict[str, dict[Language, str]] = {
    "received": {
        "zh": "您的求助已收到，编号 {request_id}。查询进度：{link}",
        "en": "Your request for help was received, number {request_id}. Track it: {link}",
        "ru": "Ваша заявка получена, номер {request_id}. Статус: {link}",
    },
    "verified": {
        "zh": "您的求助 {request_id} 已核实，正在安排处理。",
        "en": "Your request {request_id} was verified and is being assigned.",
        "ru": "Ваша заявка {request_id} проверена и передаётся исполнителю.",
    },
    "dispatched": {
        "zh": "您的求助 {request_id} 已派发给{department}，请保持电话畅通。",
        "en": "Your request {request_id} was sent to the {department} team; keep your phone on.",
        "ru": "Ваша заявка {request_id} передана службе: {department}. Будьте на связи.",
    },
}


@dataclass(frozen=True, slots=True)
class Message:
    notification_id: str
    event: str
    channel: str
    language: Language
    text: str


def event_for(topic: str) -> str | None:
    """The citizen-visible event a record on ``topic`` stands for (prefix-insensitive)."""
    if department_of(topic) is not None:
        return "dispatched"
    for name, event in _EVENT_BY_TOPIC.items():
        if topic.endswith(name):
            return event
    return None


def notification_id(request_id: str, event: str, channel: str, leg: str = "") -> str:
    """One notification per (request, event, channel) — per leg for dispatches."""
    return derive_id("notification", request_id, event, channel, leg)


def render(event: str, language: Language, **values: str) -> str | None:
    texts = _TEXT.get(event)
    if texts is None:
        return None
    return texts[language].format(**values)
