"""Signed double-submit tokens against cross-site request forgery.

A page that holds a form sets the cookie ``csrf`` to a token and puts the same token in the
form's hidden field ``csrf_token``. A token is ``<random>.<issued>.<hmac>``: the HMAC-SHA256
(key: the service's page secret) of the random part, the issue time and an optional
``binding`` (a session id, so a token of one session is worthless in another). A POST is
accepted only if the field equals the cookie, the signature is the service's and the token is
younger than ``max_age``. Another site can make a browser send the cookie but can neither read
it nor mint a signed token, so it cannot fill the field.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import Final

CSRF_COOKIE: Final = "csrf"
CSRF_FIELD: Final = "csrf_token"
CSRF_HEADER: Final = "x-csrf-token"
# A form left open this long must be reloaded before it is sent.
MAX_AGE_SECONDS: Final = 12 * 3600


def _signature(secret: str, nonce: str, issued: str, binding: str) -> str:
    message = f"{nonce}.{issued}.{binding}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def issue(secret: str, *, binding: str = "", now: float | None = None) -> str:
    """A new token (for the cookie and the form field alike)."""
    nonce = secrets.token_urlsafe(18)
    issued = str(int(time.time() if now is None else now))
    return f"{nonce}.{issued}.{_signature(secret, nonce, issued, binding)}"


def signed(secret: str, token: str | None, *, binding: str = "", now: float | None = None) -> bool:
    """Whether ``token`` carries this service's signature for ``binding`` and is still fresh."""
    if not token or len(token) > 200:
        return False
    parts = token.split(".")
    if len(parts) != 3 or not parts[1].isdigit():
        return False
    nonce, issued, signature = parts
    age = (time.time() if now is None else now) - int(issued)
    if age < -60 or age > MAX_AGE_SECONDS:
        return False
    return hmac.compare_digest(signature, _signature(secret, nonce, issued, binding))


def check(
    secret: str,
    *,
    cookie: str | None,
    submitted: str | None,
    binding: str = "",
    now: float | None = None,
) -> bool:
    """A form's token is good: the field equals the cookie, and the cookie is signed and fresh."""
    if not cookie or not submitted or not hmac.compare_digest(cookie, submitted):
        return False
    return signed(secret, cookie, binding=binding, now=now)
