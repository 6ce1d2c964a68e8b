"""Staff sessions: a signed cookie that says who signed in, so a staff key is typed once, into a
form, and never travels in a URL or sits in the browser.

The cookie is ``<session id>.<principal, base64url>.<expiry, unix seconds>.<hmac>``: the
HMAC-SHA256 (key: the service's page secret) of those parts and the session's ``purpose``
(``verify-console``, ``board:medical``, ``command``), so a session of one page opens no other.
It is ``HttpOnly`` (no script reads it), ``SameSite=Strict`` (another site's links and forms do
not carry it), ``Secure`` when the page is served over TLS, and scoped to its pages' path.
Nothing is stored on the server: signing out clears the cookie, and a session ends at its
expiry. The session id binds the pages' CSRF tokens to the session
(``Pages.render(..., csrf_binding=session.id)``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Final

from starlette.requests import Request
from starlette.responses import Response

DEFAULT_TTL_SECONDS: Final = 12 * 3600


@dataclass(frozen=True, slots=True)
class Session:
    principal: str
    id: str
    expires: int


@dataclass(frozen=True, slots=True)
class Sessions:
    """The sessions of one set of pages (one cookie name, path and purpose)."""

    secret: str
    cookie: str
    path: str
    purpose: str
    ttl_seconds: int = DEFAULT_TTL_SECONDS

    def _signature(self, sid: str, principal: str, expires: str) -> str:
        message = "|".join((self.purpose, sid, principal, expires)).encode()
        return hmac.new(self.secret.encode(), message, hashlib.sha256).hexdigest()

    def issue(self, principal: str, *, now: float | None = None) -> str:
        """A new cookie value for ``principal``."""
        sid = secrets.token_urlsafe(16)
        name = base64.urlsafe_b64encode(principal.encode()).decode().rstrip("=")
        expires = str(int((time.time() if now is None else now) + self.ttl_seconds))
        return f"{sid}.{name}.{expires}.{self._signature(sid, name, expires)}"

    def read(self, value: str | None, *, now: float | None = None) -> Session | None:
        """The session a cookie value carries, if it is this purpose's, intact and unexpired."""
        if not value or len(value) > 500:
            return None
        parts = value.split(".")
        if len(parts) != 4 or not parts[2].isdigit():
            return None
        sid, name, expires, signature = parts
        if not hmac.compare_digest(signature, self._signature(sid, name, expires)):
            return None
        if int(expires) <= (time.time() if now is None else now):
            return None
        try:
            principal = base64.urlsafe_b64decode(name + "=" * (-len(name) % 4)).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        return Session(principal=principal, id=sid, expires=int(expires))

    def current(self, request: Request) -> Session | None:
        return self.read(request.cookies.get(self.cookie))

    def start(self, response: Response, request: Request, principal: str) -> Session:
        """Open a session for ``principal``: the cookie goes on ``response``."""
        value = self.issue(principal)
        response.set_cookie(
            self.cookie,
            value,
            max_age=self.ttl_seconds,
            path=self.path,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        session = self.read(value)
        assert session is not None  # just issued
        return session

    def end(self, response: Response, request: Request) -> None:
        """Sign out: the cookie is cleared."""
        response.delete_cookie(
            self.cookie,
            path=self.path,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
