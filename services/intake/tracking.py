"""Short tracking codes: what a citizen reads out over the phone instead of a request id.

Eight characters from an alphabet without look-alikes (no 0/O, 1/I/L), shown as ``ABCD-EFGH``.
Codes are drawn at random and stored by intake (``repository.TRACKING_CODES``, unique both
ways); 31^8 ≈ 8.5·10^11 codes make a collision rare, and a collision is drawn again.
"""

from __future__ import annotations

import secrets
import unicodedata
from typing import Final

ALPHABET: Final = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
LENGTH: Final = 8


def new_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))


def display(code: str) -> str:
    """``ABCD-EFGH``: two groups of four, easier to read out and to type."""
    return f"{code[:4]}-{code[4:]}"


def normalise(text: str | None) -> str | None:
    """The code a citizen typed (any case, spaces, dashes, full-width letters), or None.

    Zero and one are not in the alphabet; a code containing them is not a code (no guess is
    made for ``O``/``I``, which are not in the alphabet either)."""
    if not text or len(text) > 40:
        return None
    folded = unicodedata.normalize("NFKC", text).upper()
    compact = "".join(c for c in folded if c.isalnum())
    if len(compact) != LENGTH or any(c not in ALPHABET for c in compact):
        return None
    return compact
