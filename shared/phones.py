"""One phone normaliser for every service: what intake keys its rate limit on, what verify
checks and deduplicates by, what notify sends to and counts a citizen by.

Numbers arrive in many shapes (spaces, dashes, full-width digits, ``+86``, ``0086``) and are
read with ``phonenumbers`` in the jurisdiction's region: a number of another country keeps its
country (``+7 916 …`` stays Russian), and a local number dialled without the area code is the
city's own (``6789 1234`` in Zhengzhou is ``0371 6789 1234``).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

import phonenumbers

from shared.jurisdiction import Jurisdiction

PhoneProblem = Literal["invalid_phone", "foreign_phone"]

_SEPARATORS = re.compile(r"[\s\-‐‑–—().\[\]/·•_]+")


@dataclass(frozen=True, slots=True)
class PhoneCheck:
    e164: str | None  # None when the number is unusable
    problem: PhoneProblem | None = None


def normalise_phone(raw: str, jurisdiction: Jurisdiction) -> PhoneCheck:
    """E.164 form of a phone number typed in any of the usual shapes, and what is wrong with
    it: ``invalid_phone`` (no number), ``foreign_phone`` (a valid number of another country)."""
    text = _SEPARATORS.sub("", unicodedata.normalize("NFKC", raw))
    if not re.fullmatch(r"\+?\d{3,20}", text):
        return PhoneCheck(None, "invalid_phone")
    local = not text.startswith("+") and len(text) == jurisdiction.local_number_digits
    if local and text[0] not in "01":  # a local number: the city's area code is implied
        text = f"{jurisdiction.area_code}{text}"
    try:
        number = phonenumbers.parse(text, jurisdiction.phone_region)
    except phonenumbers.NumberParseException:
        return PhoneCheck(None, "invalid_phone")
    if not phonenumbers.is_valid_number(number):
        return PhoneCheck(None, "invalid_phone")
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if number.country_code != jurisdiction.country_code:
        return PhoneCheck(e164, "foreign_phone")
    return PhoneCheck(e164)


def e164(raw: str, jurisdiction: Jurisdiction) -> str | None:
    """The number to send to, key and deduplicate by; None when it is unusable."""
    return normalise_phone(raw, jurisdiction).e164


def phone_identity(raw: str, jurisdiction: Jurisdiction) -> str:
    """What identifies a number for counting (rate limits, hashes): its E.164 form, or, for
    a number that is not one, its digits (so junk in many shapes is still one key)."""
    found = e164(raw, jurisdiction)
    if found is not None:
        return found
    return "".join(str(unicodedata.digit(c)) for c in raw if unicodedata.digit(c, None) is not None)
