"""The phone check: the number in E.164 (the one normaliser every service uses) and whether it
is usable (``invalid_phone`` rejects) or another country's (``foreign_phone`` goes to review)."""

from __future__ import annotations

from shared.phones import PhoneCheck, normalise_phone

__all__ = ["PhoneCheck", "normalise_phone"]
