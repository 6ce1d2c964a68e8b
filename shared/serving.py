"""Serving a service's app: uvicorn on the service's port, in one process or several, until
SIGINT or SIGTERM (a clean stop exits 0). The app itself is built by ``shared.runtime``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Generator

import uvicorn
from fastapi import FastAPI
from uvicorn.supervisors import Multiprocess

from shared import logs
from shared.metrics import MULTIPROCESS_DIR
from shared.settings import ServiceSettings

logger = logging.getLogger(__name__)


def serve(
    app: FastAPI | str,
    settings: ServiceSettings,
    *,
    service: str,
    workers: int = 1,
    http: type[asyncio.Protocol] | None = None,
) -> None:
    """Run the app with uvicorn on the service's port until SIGINT or SIGTERM.

    With ``workers`` > 1, ``app`` is the import path of an app factory ("module:function")
    that each of that many worker processes calls; they share the listening socket (uvicorn's
    supervisor restarts a worker that dies, and passes SIGTERM on). Metrics are then kept in
    prometheus_client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, a fresh directory
    unless set) and /metrics shows the sum of the workers (gauges: see shared.metrics).
    ``http``: the HTTP/1.1 protocol class, h11's by default (intake brings its own).
    """
    logs.configure(service, level=settings.log_level, fmt=settings.log_format)
    refusal = settings.refusal()
    if refusal is not None:
        # Before anything listens or connects: a city must never run on a published key.
        logger.critical("%s", refusal)
        raise SystemExit(2)
    started = time.monotonic()
    several = workers > 1
    own_dir = None
    if several:
        if not isinstance(app, str):
            raise TypeError("several workers need the app factory's import path")
        if not os.environ.get(MULTIPROCESS_DIR):
            own_dir = tempfile.mkdtemp(prefix=f"cityhelp-{service}-metrics-")
            os.environ[MULTIPROCESS_DIR] = own_dir
    logger.info(
        "listening on http://%s:%d (%d worker process%s)",
        settings.http_host,
        settings.http_port,
        workers,
        "es" if several else "",
    )
    config = uvicorn.Config(
        app,
        factory=several,
        workers=workers if several else None,
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=20,
        lifespan="on",
        loop="uvloop",
        # h11 unless the service brings its own: uvicorn's httptools protocol closes the
        # connection at once after a 400 for a request it cannot parse, and a client still
        # sending a large body got a reset instead (services/intake/server.py lingers).
        http=http or "h11",
        # The peer address stays the peer's: intake decides itself which proxies' forwarded
        # headers to believe (INTAKE_TRUSTED_PROXIES), uvicorn would believe any local one.
        proxy_headers=False,
    )
    if several:
        # The workers run uvicorn's own server; this process only supervises them.
        try:
            Multiprocess(config, sockets=[config.bind_socket()]).run()
        finally:
            if own_dir:
                shutil.rmtree(own_dir, ignore_errors=True)
    else:
        _Server(config).run()
    logger.info("exited after %.0fs", time.monotonic() - started)


class _Server(uvicorn.Server):
    """uvicorn, except that a graceful stop on SIGTERM or SIGINT ends the process with 0.

    After its graceful shutdown uvicorn raises the caught signal again with the default
    handler, so a clean stop would end "killed by SIGTERM" (143) and skip what follows
    ``run()``; supervisors and tests then cannot tell a clean stop from a kill.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        with super().capture_signals():
            yield
            self._captured_signals.clear()  # shut down gracefully: nothing to re-raise
