"""The four services as real processes, for end-to-end and fault tests.

Each :class:`ServiceSet` gets its own topic prefix, consumer groups and database, so test
modules never see each other's records even on one shared broker.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
SERVICES = ("intake", "verify", "route", "notify")
# Service ports are handed out in blocks from here (a different start per test process); a
# block with a port something already listens on (the test stack's Kafka on 19092, say) is
# passed over.
_next_port = [20000 + (os.getpid() % 200) * 32]


def service_levels_file(path: Path, *, acknowledge_minutes: float, resolve_seconds: float) -> Path:
    """A route service-levels file giving every priority the same (short) deadlines."""
    path.write_text(
        "".join(
            f"[{p}]\nacknowledge_minutes = {acknowledge_minutes}\n"
            f"resolve_seconds = {resolve_seconds}\n"
            for p in ("P1", "P2", "P3", "P4")
        ),
        encoding="utf-8",
    )
    return path


def wait_http_ready(
    name: str,
    proc: subprocess.Popen[bytes],
    url: str,
    *,
    timeout: float,
    detail: Callable[[], str],
) -> None:
    """Until ``url`` answers 200; fails, with ``detail()``, when the process exits first or
    the time is up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}; {detail()}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{name} not ready after {timeout}s; {detail()}")


def free_port() -> int:
    """A local port that was free a moment ago (nothing listens on it now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_block(size: int = len(SERVICES)) -> int:
    """A base port for four services, none of them taken now; distinct per test process and
    per set."""
    while True:
        base = _next_port[0]
        _next_port[0] += size
        if all(_bindable(port) for port in range(base, base + size)):
            return base


@dataclass
class ServiceSet:
    kafka_bootstrap: str
    mongodb_uri: str
    log_dir: Path
    prefix: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:10]}.")
    database: str = ""
    extra_env: dict[str, str] = field(default_factory=dict)
    base_port: int = field(default_factory=free_port_block)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.database = self.database or f"test_{self.prefix.strip('.')}"
        self.log_dir.mkdir(parents=True, exist_ok=True)

    def port(self, service: str) -> int:
        return self.base_port + SERVICES.index(service)

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.port(service)}"

    def env(self, service: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "KAFKA_BOOTSTRAP": self.kafka_bootstrap,
                "MONGODB_URI": self.mongodb_uri,
                "MONGODB_DATABASE": self.database,
                "TOPIC_PREFIX": self.prefix,
                f"{service.upper()}_HTTP_PORT": str(self.port(service)),
                "INTAKE_PUBLIC_BASE_URL": self.url("intake"),
                "NOTIFY_PUBLIC_BASE_URL": self.url("intake"),
                "LOG_LEVEL": "INFO",
                "PYTHONUNBUFFERED": "1",
                # A test machine: the published development keys are allowed (a test that
                # checks the refusal sets it to "0").
                "CITYHELP_DEVELOPMENT": "1",
            }
        )
        env.update(self.extra_env)
        return env

    def start(self, *services: str) -> None:
        for service in services or SERVICES:
            log = (self.log_dir / f"{self.prefix}{service}.log").open("ab")
            self.procs[service] = subprocess.Popen(
                [sys.executable, "-m", f"services.{service}"],
                cwd=REPO,
                env=self.env(service),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            for service in services or SERVICES:
                self.wait_ready(service)
        except BaseException:
            self.stop()  # one that never became ready leaves none of the others running
            raise

    @contextmanager
    def running(self, *services: str) -> Iterator[ServiceSet]:
        """The services (all four by default) started for a block and stopped after it,
        whatever the block raised."""
        self.start(*services)
        try:
            yield self
        finally:
            self.stop()

    def wait_ready(self, service: str, timeout: float = 60.0) -> None:
        wait_http_ready(
            service,
            self.procs[service],
            f"{self.url(service)}/readyz",
            timeout=timeout,
            detail=lambda: f"see {self.log_dir}",
        )

    def kill(self, service: str) -> None:
        """SIGKILL: no clean-up, no commit, as in a crash."""
        proc = self.procs[service]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def terminate(self, service: str, timeout: float = 30.0) -> int:
        proc = self.procs[service]
        proc.send_signal(signal.SIGTERM)
        return proc.wait(timeout=timeout)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
