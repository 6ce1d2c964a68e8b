"""The image's health check (tools/healthcheck.py) asks the service named by SERVICE on the port
its settings give, and says 0 only for a 200 (here a small HTTP server plays the service)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tools import healthcheck

pytestmark = pytest.mark.unit


class _Service(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response({"/healthz": 200, "/readyz": 503}.get(self.path, 404))
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass


@pytest.fixture
def service_port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Service)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def test_alive_but_not_ready(service_port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVICE", "route")
    monkeypatch.setenv("ROUTE_HTTP_PORT", str(service_port))
    assert healthcheck.main([]) == 0
    assert healthcheck.main(["--ready"]) == 1


def test_another_services_port_is_not_asked(
    service_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SERVICE", "notify")
    monkeypatch.setenv("ROUTE_HTTP_PORT", str(service_port))
    monkeypatch.delenv("NOTIFY_HTTP_PORT", raising=False)
    assert healthcheck.probe_url("notify", ready=False) == "http://127.0.0.1:8083/healthz"


def test_an_unknown_service_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVICE", "billing")
    with pytest.raises(ValueError, match="SERVICE must be one of"):
        healthcheck.main([])
