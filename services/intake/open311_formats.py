"""Open311 GeoReport v2 rendering, pure: JSON and the spec's XML (``services/service``,
``service_definition``, ``service_requests/request``, ``errors/error``), and its error format."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET  # builds our own XML only; nothing untrusted is parsed
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from services.intake.open311 import Open311Error

Format = Literal["json", "xml"]
FORMATS: tuple[Format, ...] = ("json", "xml")

# Element names of list items in XML, by the list's element name.
_ITEM_TAGS = {"attributes": "attribute", "values": "value"}


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _append(parent: ET.Element, tag: str, value: Any) -> None:
    element = ET.SubElement(parent, tag)
    if value is None:
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            _append(element, str(key), item)
    elif isinstance(value, list):
        for item in value:
            _append(element, _ITEM_TAGS.get(tag, "item"), item)
    else:
        element.text = _text(value)


def render_xml(root: str, item: str | None, payload: Any) -> bytes:
    """``payload`` as the spec's XML: a list under ``<root>`` with one ``<item>`` each, or one
    mapping as ``<root>``'s children."""
    element = ET.Element(root)
    if item is not None:
        for entry in payload:
            _append(element, item, entry)
    else:
        for key, value in payload.items():
            _append(element, str(key), value)
    body = ET.tostring(element, encoding="unicode")
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + body.encode("utf-8")


def render_json(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")


def render_errors(errors: Sequence[Open311Error], fmt: Format) -> bytes:
    items = [{"code": e.code, "description": e.description} for e in errors]
    if fmt == "xml":
        return render_xml("errors", "error", items)
    return render_json(items)


def media_type(fmt: Format) -> str:
    return "text/xml; charset=utf-8" if fmt == "xml" else "application/json"
