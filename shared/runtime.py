"""The composition root every service builds on: broker, database, stage, HTTP app
(``shared.serving`` runs it).

A service's ``build_app(settings, **overrides)`` creates a :class:`Runtime`, registers its
subscribers and routes on it, and returns ``runtime.http_app(...)``. Nothing connects at import
time; connections open in the app's lifespan and close on shutdown (SIGTERM finishes in-flight
records, commits and exits).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from fastapi import APIRouter, FastAPI, Response
from fastapi.responses import JSONResponse
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared import faults
from shared.batch import BatchRunner
from shared.db import Client, Database, build_client, ping
from shared.http import HttpMiddleware
from shared.kafka import EventBus, build_broker, ensure_topics
from shared.lag import LagCollector, Subscription
from shared.metrics import HTTP_REQUESTS, metrics_page
from shared.plans import Planner
from shared.retry import retrying
from shared.settings import ServiceSettings
from shared.stage import BATCHES, Handler, Record, Stage
from shared.topics import ServiceName, Topic, TopicNames

logger = logging.getLogger(__name__)

Hook = Callable[[], Awaitable[None]]


@dataclass
class Runtime:
    service: ServiceName
    settings: ServiceSettings
    broker: KafkaBroker
    client: Client
    names: TopicNames
    bus: EventBus
    stage: Stage
    runner: BatchRunner
    create_topics: bool = True
    startup: list[Hook] = field(default_factory=list)
    background: list[Hook] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    # The consumer groups subscribe() created, for the lag collector.
    consumers: list[Subscription] = field(default_factory=list)

    @classmethod
    def create(
        cls,
        service: ServiceName,
        settings: ServiceSettings,
        *,
        broker: KafkaBroker | None = None,
        client: Client | None = None,
        create_topics: bool = True,
    ) -> Runtime:
        faults.configure(settings.crash_points)  # inert unless a fault test armed some
        broker = broker or build_broker(settings, service=service)
        names = TopicNames(settings.topic_prefix)
        bus = EventBus(broker, names, source=f"cityhelp/{service}")
        stage = Stage(
            service=service,
            bus=bus,
            dlq_consecutive_limit=settings.dlq_consecutive_limit,
            retry_initial_seconds=settings.retry_initial_seconds,
            retry_max_seconds=settings.retry_max_seconds,
        )
        client = client or build_client(settings, app_name=service)
        runner = BatchRunner(
            stage,
            db=client[settings.mongodb_database],
            concurrency=settings.batch_concurrency,
        )
        return cls(
            service=service,
            settings=settings,
            broker=broker,
            client=client,
            names=names,
            bus=bus,
            stage=stage,
            runner=runner,
            create_topics=create_topics,
        )

    @property
    def db(self) -> Database:
        return self.client[self.settings.mongodb_database]

    def group(self, name: str | None = None) -> str:
        """Consumer group id; the topic prefix keeps isolated runs apart."""
        return f"{self.settings.topic_prefix}cityhelp-{name or self.service}"

    def subscribe(
        self, topics: Sequence[Topic], handler: Handler, *, name: str, group: str | None = None
    ) -> None:
        """Consume ``topics`` at least once with a per-record handler: each batch's records are
        handled concurrently across request ids, in order within one, and committed together."""
        runner = self.runner

        async def consume(body: list[bytes], message: KafkaMessage) -> None:
            await runner.each(Record.batch(message), message.consumer, handler=handler)

        self._batch_subscriber(topics, consume, name=name, group=group)

    def subscribe_batch(
        self,
        topics: Sequence[Topic],
        plan: Planner,
        *,
        careful: Handler,
        name: str,
        group: str | None = None,
        urgent: bool = False,
    ) -> None:
        """Consume ``topics`` at least once through the batch runner: ``plan`` decides for a
        whole batch, the runner applies it; ``careful`` finishes a redelivered record.
        ``urgent``: a priority lane, whose batches the process's other batches give way to."""
        runner = self.runner

        async def consume(body: list[bytes], message: KafkaMessage) -> None:
            await runner.run(
                Record.batch(message), message.consumer, plan=plan, careful=careful, urgent=urgent
            )

        self._batch_subscriber(topics, consume, name=name, group=group)

    def subscribe_lanes(
        self,
        ordinary: Sequence[Topic],
        priority: Sequence[Topic],
        plan: Planner,
        *,
        careful: Handler,
        name: str,
    ) -> None:
        """:meth:`subscribe_batch` the ordinary lanes (the service's group) and the priority
        lanes (group ``<service>-priority``, subscriber ``<name>-priority``): in a group of
        their own, urgent records never wait behind a backlog of ordinary ones."""
        self.subscribe_batch(ordinary, plan, careful=careful, name=name)
        self.subscribe_batch(
            priority,
            plan,
            careful=careful,
            name=f"{name}-priority",
            group=f"{self.service}-priority",
            urgent=True,
        )

    def _batch_subscriber(
        self,
        topics: Sequence[Topic],
        consume: Callable[[list[bytes], KafkaMessage], Awaitable[None]],
        *,
        name: str,
        group: str | None,
    ) -> None:
        self.broker.subscriber(
            *[self.names(t) for t in topics],
            group_id=self.group(group),
            title=f"{self.service}.{name}",
            max_records=self.settings.batch_max_records,
            batch_timeout_ms=self.settings.batch_timeout_ms,
            fetch_max_bytes=self.settings.kafka_fetch_max_bytes,
            max_partition_fetch_bytes=self.settings.kafka_partition_fetch_bytes,
            **BATCHES,
        )(consume)
        self.consumers.append(
            Subscription(group=self.group(group), topics=tuple(self.names(t) for t in topics))
        )

    async def readiness(self) -> dict[str, str]:
        checks: dict[str, str] = {}
        try:
            checks["kafka"] = "ok" if await self.broker.ping(timeout=2.0) else "unreachable"
        except Exception as exc:  # readiness reports, never raises
            checks["kafka"] = f"error: {type(exc).__name__}"
        try:
            await asyncio.wait_for(ping(self.client), timeout=2.0)
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"error: {type(exc).__name__}"
        checks["stage"] = "halted: dead-letter limit reached" if self.stage.halted else "ok"
        return checks

    @contextlib.asynccontextmanager
    async def lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        if self.create_topics:
            await ensure_topics(self.settings)
        for hook in self.startup:
            # Start-up steps wait for the database to come up instead of failing the service.
            await retrying(hook, what=getattr(hook, "__name__", "startup"), attempts=60)
        await self.broker.start()
        self._tasks = [
            asyncio.create_task(_supervised(hook)) for hook in [*self.background, *self._lag()]
        ]
        logger.info("started", extra={"stage": self.service})
        try:
            yield
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self.broker.stop()
            await self.client.close()
            logger.info("stopped", extra={"stage": self.service})

    def _lag(self) -> list[Hook]:
        """The consumer-lag loop for this service's groups (none without consumers)."""
        if not self.consumers or self.settings.lag_interval_seconds <= 0:
            return []
        collector = LagCollector(
            self.settings,
            self.consumers,
            service=self.service,
            interval=self.settings.lag_interval_seconds,
        )
        return [collector.run]

    def http_app(
        self, *, title: str, routers: Sequence[APIRouter] = (), version: str = "1.0.0"
    ) -> FastAPI:
        """The service's HTTP app: its routes plus /healthz, /readyz and /metrics."""
        # The services report through Prometheus (/metrics); FastAPI's native OpenTelemetry
        # hooks, with no provider configured, still checked for one on every request (4 µs).
        app = FastAPI(
            title=title,
            version=version,
            lifespan=self.lifespan,
            telemetry={"tracing": False, "metrics": False, "logs": False},
        )
        app.add_middleware(_HttpMetrics, service=self.service)
        app.state.runtime = self

        @app.get("/healthz", tags=["operations"], summary="Alive")
        async def healthz() -> dict[str, str]:
            return {"status": "ok", "service": self.service}

        @app.get("/readyz", tags=["operations"], summary="Connected to Kafka and the database")
        async def readyz() -> JSONResponse:
            checks = await self.readiness()
            ok = all(v == "ok" for v in checks.values())
            return JSONResponse(
                {
                    "status": "ready" if ok else "not ready",
                    "service": self.service,
                    "checks": checks,
                },
                status_code=200 if ok else 503,
            )

        @app.get("/metrics", tags=["operations"], summary="Prometheus metrics")
        async def metrics() -> Response:
            return Response(metrics_page(), media_type=CONTENT_TYPE_LATEST)

        for router in routers:
            app.include_router(router)
        return app


class _HttpMetrics(HttpMiddleware):
    """Counts answered HTTP requests by route template, method and status (HTTP_REQUESTS).

    A pure ASGI middleware: Starlette's ``BaseHTTPMiddleware`` would cost more than the handler
    on intake's hot path. The route template is read from the scope the router filled in; an
    exception that escapes the app is counted by no one here (the server's error handler
    answers it), as before.
    """

    def __init__(self, app: ASGIApp, service: str) -> None:
        super().__init__(app)
        self.service = service

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        status = 0

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        await self.app(scope, receive, send_status)
        template = getattr(scope.get("route"), "path", "unmatched")
        HTTP_REQUESTS.labels(self.service, template, scope["method"], str(status)).inc()


async def _supervised(hook: Hook) -> None:
    """Keep a background loop (timers, sweepers) running across transient failures."""
    while True:
        try:
            await hook()
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("background task failed; restarting it in 2 s")
            await asyncio.sleep(2)
