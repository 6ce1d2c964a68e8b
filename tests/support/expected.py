"""What the public contract promises, written out once for the tests that check it: never
derived from the code under test, so a change there shows as a failure here."""

from __future__ import annotations

from typing import Final

# The Open311 service list: one service per category, in this order.
SERVICE_CODES: Final = [
    "epidemic_policy",
    "transport",
    "medical",
    "education",
    "food_supply",
    "health_code",
    "suggestion",
]
