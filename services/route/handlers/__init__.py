"""Route's handlers, one module per input: verified requests (``verified``), the departments'
status reports (``status``), the call-back survey's reopen and close events (``lifecycle``) and
the deadlines in the database (``timers``); what they do alike lives in ``effects``.

Every effect is keyed by an id derived from its cause (leg ids, event ids), and a status
event is marked applied only after its effects, so a redelivery finishes what a crash left
undone and repeats nothing.
"""

from __future__ import annotations

from services.route.handlers.context import ACTOR, RouteContext
from services.route.handlers.effects import dispatch_leg, new_leg, record_leg, refresh_summary
from services.route.handlers.lifecycle import handle_lifecycle
from services.route.handlers.status import handle_status
from services.route.handlers.verified import handle_verified

__all__ = [
    "ACTOR",
    "RouteContext",
    "dispatch_leg",
    "handle_lifecycle",
    "handle_status",
    "handle_verified",
    "new_leg",
    "record_leg",
    "refresh_summary",
]
