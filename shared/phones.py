"""One phone normaliser for every service: what intake keys its rate limit on, what verify
checks and deduplicates by, what notify sends to and counts a citizen by.

Numbers arrive in many shapes (spaces, dashes, full-width digits, ``+86``, ``0086``) and are
read with ``phonenumbers`` in the jurisdiction's region: a number of another country keeps its
country (``+7 916 …`` stays Russian), and a local number dialled without the area code is the
city's own (``6789 1234`` in Zhengzhou is ``0371 6789 1234``).

The shape nearly every citizen types in a Chinese city, a mobile number (11 digits, maybe
spaced or dashed, maybe after ``+86`` or ``0086``), has a fast path: it is checked with
``phonenumbers.is_valid_number`` alone and its E.164 form written directly, without
``phonenumbers.parse`` (the most of a number's cost, paid in intake, verify and notify for each
request). Its answers are held to the parser's by a property test (tests/unit/test_phones.py);
every other shape, and any number the fast path is unsure of, goes to the parser.

Each process keeps the answers for the last 4,096 numbers it read (verify reads a request's
number three times, notify once for each of its events).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass
from typing import Literal, NamedTuple

import phonenumbers

from shared.jurisdiction import Jurisdiction

PhoneProblem = Literal["invalid_phone", "foreign_phone"]

_SEPARATORS = re.compile(r"[\s\-‐‑–—().\[\]/·•_]+")
# 13x–19x: China's mobile ranges. 179xx is left to the parser: there it is also a carrier
# prefix the parser may strip (national_prefix_for_parsing ``(1(?:[12]\d|79)\d\d)|0``).
_MOBILE = re.compile(r"(?:\+86|0086)?(1[3-9]\d{9})")
_MOBILE_SEPARATORS = str.maketrans("", "", " -")


@dataclass(frozen=True, slots=True)
class PhoneCheck:
    e164: str | None  # None when the number is unusable
    problem: PhoneProblem | None = None


class Dialling(NamedTuple):
    """What reading a number takes from its jurisdiction (hashable: answers are kept by it)."""

    country_code: int
    phone_region: str
    area_code: str
    local_number_digits: int


def normalise_phone(raw: str, jurisdiction: Jurisdiction) -> PhoneCheck:
    """E.164 form of a phone number typed in any of the usual shapes, and what is wrong with
    it: ``invalid_phone`` (no number), ``foreign_phone`` (a valid number of another country)."""
    dialling = Dialling(
        jurisdiction.country_code,
        jurisdiction.phone_region,
        jurisdiction.area_code,
        jurisdiction.local_number_digits,
    )
    return _normalised(raw, dialling)


@functools.lru_cache(maxsize=4096)
def _normalised(raw: str, dialling: Dialling) -> PhoneCheck:
    mobile = _chinese_mobile(raw, dialling)
    if mobile is not None:
        return PhoneCheck(mobile)
    return parsed_phone(raw, dialling)


def _chinese_mobile(raw: str, jurisdiction: Jurisdiction | Dialling) -> str | None:
    """The E.164 form of a valid Chinese mobile number in a Chinese city, typed in its common
    shape; None for anything else (which the parser reads)."""
    if jurisdiction.country_code != 86 or jurisdiction.phone_region != "CN" or not raw.isascii():
        return None
    match = _MOBILE.fullmatch(raw.translate(_MOBILE_SEPARATORS))
    if match is None:
        return None
    digits = match.group(1)
    if digits.startswith("179"):
        return None
    number = phonenumbers.PhoneNumber(country_code=86, national_number=int(digits))
    return f"+86{digits}" if phonenumbers.is_valid_number(number) else None


def parsed_phone(raw: str, jurisdiction: Jurisdiction | Dialling) -> PhoneCheck:
    """:func:`normalise_phone` by ``phonenumbers.parse`` alone, for every shape."""
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
