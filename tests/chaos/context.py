"""What every part of the fault suite gets, and the rows it reports."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support.services import ServiceSet, free_port

REPO = Path(__file__).resolve().parents[2]
STACK = REPO / "deploy" / "local" / "stack.sh"


@dataclass(frozen=True)
class Row:
    """One line of the chaos table: a check, how many were tried, and what happened."""

    check: str
    tried: int
    ok: int  # accepted / refused / accounted for — what "good" means is in `meaning`
    bad: int  # lost / duplicated / 5xx / unaccounted — must be 0
    meaning: str
    seconds: float = 0.0
    fields: dict[str, int] = field(
        default_factory=dict
    )  # extra key=value figures for the last line


@dataclass
class ChaosContext:
    """The local stack under test. ``stack`` controls the broker and database processes
    through deploy/local/stack.sh with the same environment they were started with."""

    kafka_bootstrap: str
    mongodb_uri: str
    services: ServiceSet
    scale: float = 1.0  # 1.0 for `make chaos`; smaller in `make test`
    # The fake SMS gateway notify sends to (``tools.fake_gateway``), if any.
    gateway_url: str = ""
    quiet: bool = False
    drain_timeout: float = 0.0  # seconds the surge waits for the stages to drain; 0 = default
    # Time budget of the whole run in seconds (0 = none): the surge stops sending at half of
    # it and stops waiting for the drain at its end, then counts what is there.
    budget: float = 0.0
    stopping: asyncio.Event = field(default_factory=asyncio.Event)  # no new requests
    drain_stop: asyncio.Event = field(default_factory=asyncio.Event)  # no more waiting

    def request_stop(self) -> None:
        """Stop sending and stop waiting (Ctrl-C, SIGTERM): the figures are still counted."""
        if not self.drain_stop.is_set():
            self.say("stop requested: no more requests; counting what is there")
        self.stopping.set()
        self.drain_stop.set()

    started: float = field(default_factory=time.monotonic)

    def stack(self, command: str) -> None:
        """Run ``stack.sh <command>`` (kafka-restart, db-stop, db-start, ...) and wait for it."""
        subprocess.run([str(STACK), command], check=True, env=dict(os.environ))

    async def astack(self, command: str) -> None:
        """``stack`` without blocking the event loop (the surge goes on meanwhile)."""
        await asyncio.to_thread(self.stack, command)

    async def kill(self, service: str) -> None:
        """SIGKILL one service (a crash: no clean-up, no commit)."""
        await asyncio.to_thread(self.services.kill, service)

    async def start(self, service: str) -> None:
        """Start one service again and wait until it answers /readyz."""
        await asyncio.to_thread(self.services.start, service)

    def count(self, n: int, minimum: int = 1) -> int:
        return max(minimum, int(n * self.scale))

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def say(self, message: str) -> None:
        """A progress line (no personal data: counts and service names only)."""
        if not self.quiet:
            print(f"[chaos {self.elapsed:7.1f}s] {message}", flush=True)


class GatewayProcess:
    """The fake SMS gateway as its own process, so that it survives whatever notify does and
    counts every delivery it receives (and every resend it drops)."""

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        log_dir.mkdir(parents=True, exist_ok=True)
        self._log = (log_dir / f"fake-sms-{self.port}.log").open("ab")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> GatewayProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tools.fake_gateway", "--port", str(self.port)],
            cwd=REPO,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/messages?to=none", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"the fake SMS gateway exited with {self.proc.returncode}")
            time.sleep(0.2)
        raise TimeoutError("the fake SMS gateway did not answer")

    def notify_env(self) -> dict[str, str]:
        """Environment that makes notify deliver by SMS to this gateway."""
        return {"NOTIFY_CHANNELS": '["sms"]', "NOTIFY_SMS_URL": f"{self.url}/messages"}

    async def snapshot(self) -> dict[str, Any]:
        return await gateway_snapshot(self.url)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._log.close()


async def gateway_snapshot(url: str) -> dict[str, Any]:
    """Everything the fake gateway stored, and the resends it dropped."""
    async with httpx.AsyncClient(timeout=120) as client:
        response = await client.get(f"{url}/messages")
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data
