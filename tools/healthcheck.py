"""``python -m tools.healthcheck [--ready]``: the container's health check.

Asks the service named by ``SERVICE`` (intake, verify, route, notify) on its own port (its
settings: ``<SERVICE>_HTTP_PORT`` or the contract's default) for ``GET /healthz`` (alive), or
``/readyz`` with ``--ready``; exits 0 on a 200, else 1. Used by the image's HEALTHCHECK and by
docker-compose.yml.
"""

from __future__ import annotations

import importlib
import os
import sys
import urllib.error
import urllib.request

from shared.settings import ServiceSettings
from shared.topics import SERVICES


def settings_class(service: str) -> type[ServiceSettings]:
    """The settings class of a service (``services.<name>.settings``)."""
    if service not in SERVICES:
        raise ValueError(f"SERVICE must be one of {', '.join(SERVICES)}, not {service!r}")
    module = importlib.import_module(f"services.{service}.settings")
    found = [
        value
        for value in vars(module).values()
        if isinstance(value, type)
        and issubclass(value, ServiceSettings)
        and value is not ServiceSettings
    ]
    if len(found) != 1:
        raise LookupError(f"services.{service}.settings defines {len(found)} settings classes")
    return found[0]


def probe_url(service: str, *, ready: bool) -> str:
    port = settings_class(service)().http_port
    return f"http://127.0.0.1:{port}/{'readyz' if ready else 'healthz'}"


def main(argv: list[str]) -> int:
    url = probe_url(os.environ.get("SERVICE", ""), ready="--ready" in argv)
    try:
        with urllib.request.urlopen(url, timeout=3) as response:  # noqa: S310 (loopback only)
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"[health] {url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
