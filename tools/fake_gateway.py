"""A local SMS gateway that records messages instead of sending them.

``python -m tools.fake_gateway --port 8099`` serves:

- ``POST /messages`` (also ``/webhook``): JSON ``{to, text, idempotency_key}``; a repeated
  idempotency key is acknowledged but not stored again, as a real gateway drops a resend;
- ``GET /messages``: ``{"messages": [...], "duplicates": n, "duplicate_keys": {key: n}}``
  (optional ``?to=+86...``);
- ``DELETE /messages``: forget everything;
- ``POST /control``: ``{"hold_seconds": x, "status": code}`` — answer every send only after
  ``x`` seconds (the message is stored first, as a gateway that accepted it but whose answer
  got lost), or with ``status`` instead of 200; for fault tests.

With ``--token`` it demands ``Authorization: Bearer <token>``. Tests may also run it in-process
through :class:`FakeGateway`. Local use only: messages, numbers included, stay in memory.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse


class FakeGateway:
    """The gateway's state and server; ``start()`` runs it on a background thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, token: str = "") -> None:
        self.token = token
        self.hold_seconds = 0.0
        # Holds for messages to one number only (tests fault one citizen's message).
        self.hold_to: dict[str, float] = {}
        self.status = 200
        self.messages: list[dict[str, Any]] = []
        self.duplicates = 0
        self.duplicate_keys: dict[str, int] = {}
        self._seen: set[str] = set()
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer((host, port), _handler_for(self))
        self.server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def accept(self, payload: dict[str, Any], path: str, headers: dict[str, str]) -> bool:
        """Store a message unless its idempotency key was seen; True when it was new."""
        key = str(payload.get("idempotency_key") or "")
        with self._lock:
            if key and key in self._seen:
                self.duplicates += 1
                self.duplicate_keys[key] = self.duplicate_keys.get(key, 0) + 1
                return False
            if key:
                self._seen.add(key)
            self.messages.append({**payload, "path": path, "signature": headers.get("x-signature")})
            return True

    def snapshot(self, to: str | None = None) -> dict[str, Any]:
        with self._lock:
            messages = [m for m in self.messages if to is None or m.get("to") == to]
            return {
                "messages": messages,
                "duplicates": self.duplicates,
                "duplicate_keys": dict(self.duplicate_keys),
            }

    def reset(self) -> None:
        with self._lock:
            self.messages.clear()
            self._seen.clear()
            self.duplicates = 0
            self.duplicate_keys.clear()

    def start(self) -> FakeGateway:
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _handler_for(gateway: FakeGateway) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # Keep-alive, as a real gateway: a sender reuses its connections (every reply carries
        # its content-length).
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the numbers and texts stay out of the output

        def _reply(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body, ensure_ascii=False).encode("utf-8")
            # The sender may have given up waiting (or died), as with a real gateway.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self._send(status, data)

        def _send(self, status: int, data: bytes) -> None:
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> Any:
            length = int(self.headers.get("content-length") or 0)
            return json.loads(self.rfile.read(length) or b"{}")

        def _authorised(self) -> bool:
            if not gateway.token:
                return True
            return self.headers.get("authorization") == f"Bearer {gateway.token}"

        def do_GET(self) -> None:
            url = urlparse(self.path)
            if url.path != "/messages":
                self._reply(404, {"error": "not_found"})
                return
            to = parse_qs(url.query).get("to", [None])[0]
            self._reply(200, gateway.snapshot(to))

        def do_DELETE(self) -> None:
            gateway.reset()
            self._reply(200, {"status": "reset"})

        def do_POST(self) -> None:
            path = urlparse(self.path).path
            try:
                payload = self._body()
            except (ValueError, UnicodeDecodeError):
                self._reply(400, {"error": "malformed_json"})
                return
            if path == "/control":
                gateway.hold_seconds = float(payload.get("hold_seconds", gateway.hold_seconds))
                gateway.status = int(payload.get("status", gateway.status))
                self._reply(200, {"hold_seconds": gateway.hold_seconds, "status": gateway.status})
                return
            if path not in ("/messages", "/webhook"):
                self._reply(404, {"error": "not_found"})
                return
            if not self._authorised():
                self._reply(401, {"error": "unauthorised"})
                return
            if not isinstance(payload, dict) or not payload.get("to") or not payload.get("text"):
                self._reply(422, {"error": "to_and_text_required"})
                return
            if gateway.status != 200:
                self._reply(gateway.status, {"error": "configured_failure"})
                return
            new = gateway.accept(payload, path, {k.lower(): v for k, v in self.headers.items()})
            hold = gateway.hold_to.get(str(payload["to"]), gateway.hold_seconds)
            if hold:
                time.sleep(hold)
            self._reply(200, {"status": "queued" if new else "duplicate"})

    return Handler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fake SMS gateway that records messages.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--token", default="", help="require this bearer token")
    args = parser.parse_args(argv)
    gateway = FakeGateway(args.host, args.port, args.token)
    print(f"[fake-sms] listening on {gateway.url}/messages", flush=True)
    try:
        gateway.server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        gateway.server.server_close()


if __name__ == "__main__":
    main()
