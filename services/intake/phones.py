"""The phone identity intake keys its per-phone rate limit on, with a fast path for the shape
nearly every citizen types: a Chinese mobile number, 11 digits, maybe spaced or dashed, maybe
after ``+86`` or ``0086``.

``shared.phones.phone_identity`` reads a number with ``phonenumbers.parse``, a fifth of the
rate limit's cost per accepted request. For the common shape the fast path checks the number
with ``phonenumbers.is_valid_number`` alone and writes its E.164 form itself; its answers are
held to ``shared.phones``' by a property test (tests/unit/test_intake_phones.py). Every other
shape, and any number the fast path is unsure of, goes to ``shared.phones``.
"""

from __future__ import annotations

import re

import phonenumbers

from shared.jurisdiction import Jurisdiction
from shared.phones import phone_identity as read_phone_identity

# 13x–19x: China's mobile ranges. 179xx is left to phonenumbers: there it is also a carrier
# prefix the parser may strip (national_prefix_for_parsing ``(1(?:[12]\d|79)\d\d)|0``).
_MOBILE = re.compile(r"(?:\+86|0086)?(1[3-9]\d{9})")
_SEPARATORS = str.maketrans("", "", " -")


def phone_identity(raw: str, jurisdiction: Jurisdiction) -> str:
    """What ``shared.phones.phone_identity`` answers, sooner for a Chinese mobile number."""
    if jurisdiction.country_code == 86 and jurisdiction.phone_region == "CN" and raw.isascii():
        match = _MOBILE.fullmatch(raw.translate(_SEPARATORS))
        if match is not None:
            digits = match.group(1)
            number = phonenumbers.PhoneNumber(country_code=86, national_number=int(digits))
            if not digits.startswith("179") and phonenumbers.is_valid_number(number):
                return f"+86{digits}"
    return read_phone_identity(raw, jurisdiction)
