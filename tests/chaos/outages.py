"""The faults of a surge: each service killed with SIGKILL and started again, the broker
restarted, the database stopped for a while — one after another, at set points of the surge.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from tests.chaos.context import ChaosContext, Row


@dataclass
class Fault:
    """One fault, fired when ``at`` (a fraction of the surge) of the requests are accepted."""

    name: str
    at: float
    action: Callable[[ChaosContext], Awaitable[None]]
    meaning: str
    fired_at: float = -1.0  # seconds into the run
    recovered_after: float = -1.0  # seconds from the fault until the part was back
    error: str = ""

    def row(self) -> Row:
        ok = self.fired_at >= 0 and not self.error
        return Row(
            check=f"fault: {self.name}",
            tried=1,
            ok=1 if ok else 0,
            bad=0 if ok else 1,
            meaning=(self.error or f"{self.meaning}; at +{self.fired_at:.0f}s")
            if self.fired_at >= 0
            else "never fired (the surge ended first)",
            seconds=max(0.0, self.recovered_after),
        )


def sigkill(service: str, down: float) -> Callable[[ChaosContext], Awaitable[None]]:
    async def action(ctx: ChaosContext) -> None:
        ctx.say(f"FAULT SIGKILL {service}")
        await ctx.kill(service)
        await asyncio.sleep(down)
        ctx.say(f"starting {service} again")
        await ctx.start(service)
        ctx.say(f"{service} ready again")

    return action


async def broker_restart(ctx: ChaosContext) -> None:
    ctx.say("FAULT broker restart (stack.sh kafka-restart)")
    await ctx.astack("kafka-restart")
    ctx.say("broker back")


def database_stop(seconds: float) -> Callable[[ChaosContext], Awaitable[None]]:
    async def action(ctx: ChaosContext) -> None:
        ctx.say(f"FAULT database stopped for {seconds:.0f}s (stack.sh db-stop)")
        await ctx.astack("db-stop")
        await asyncio.sleep(seconds)
        await ctx.astack("db-start")
        ctx.say("database back")

    return action


def schedule(*, db_seconds: float = 10.0, down: float = 2.0) -> list[Fault]:
    """intake, verify, route, broker, notify, database: spread over the surge."""
    return [
        Fault("SIGKILL intake", 0.10, sigkill("intake", down), "clients retried with their keys"),
        Fault("SIGKILL verify", 0.22, sigkill("verify", down), "uncommitted records redelivered"),
        Fault("SIGKILL route", 0.34, sigkill("route", down), "uncommitted records redelivered"),
        Fault("broker restart", 0.46, broker_restart, "producers and consumers reconnected"),
        Fault("SIGKILL notify", 0.58, sigkill("notify", down), "uncommitted records redelivered"),
        Fault(
            f"database down {db_seconds:.0f}s",
            0.70,
            database_stop(db_seconds),
            "stages backed off and resumed",
        ),
    ]


async def run_faults(
    ctx: ChaosContext, faults: list[Fault], progress: Callable[[], float], done: asyncio.Event
) -> None:
    """Fire each fault in turn once ``progress()`` (0..1) reaches its point."""
    for fault in faults:
        # If the surge ended first, the fault still fires, while the stages drain.
        while progress() < fault.at and not done.is_set():
            await asyncio.sleep(0.2)
        if ctx.drain_stop.is_set():
            return  # a stop was requested: the faults not yet fired are reported as such
        fault.fired_at = ctx.elapsed
        started = time.monotonic()
        try:
            await fault.action(ctx)
        except Exception as exc:  # reported as a bad row, the run goes on
            fault.error = f"{type(exc).__name__}: {exc}"[:200]
            ctx.say(f"fault {fault.name} failed: {fault.error}")
        fault.recovered_after = time.monotonic() - started
