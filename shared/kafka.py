"""Kafka wiring: the broker factory, the event bus every service publishes through, topic set-up."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    KafkaConnectionError,
    OutOfOrderSequenceNumber,
    TopicAlreadyExistsError,
    UnknownProducerId,
    for_code,
)
from aiokafka.producer.transaction_manager import NO_PRODUCER_EPOCH, NO_PRODUCER_ID, PidAndEpoch
from faststream.kafka import KafkaBroker
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512
from pydantic import BaseModel

from shared.envelope import Envelope, derive_id, event_type, utcnow
from shared.lag import client_options
from shared.metrics import PUBLISHED_RECORDS, registry
from shared.retry import retrying
from shared.settings import ServiceSettings
from shared.topics import Topic, TopicNames, TopicSpec, load_topic_specs

logger = logging.getLogger(__name__)


def kafka_security(settings: ServiceSettings) -> BaseSecurity | None:
    """SASL (SCRAM or PLAIN) and TLS from configuration; None for plaintext."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    use_ssl = protocol in ("SSL", "SASL_SSL")
    context: ssl.SSLContext | None = None
    if use_ssl:
        context = ssl.create_default_context(cafile=settings.kafka_ssl_cafile or None)
    if protocol == "SSL":
        return BaseSecurity(ssl_context=context, use_ssl=True)
    kinds: dict[str, type[SASLPlaintext | SASLScram256 | SASLScram512]] = {
        "PLAIN": SASLPlaintext,
        "SCRAM-SHA-256": SASLScram256,
        "SCRAM-SHA-512": SASLScram512,
    }
    kind = kinds[settings.kafka_sasl_mechanism]
    return kind(
        username=settings.kafka_sasl_username,
        password=settings.kafka_sasl_password,
        ssl_context=context,
        use_ssl=use_ssl,
    )


def build_broker(settings: ServiceSettings, *, service: str) -> KafkaBroker:
    """A broker whose producer is idempotent and waits for all in-sync replicas (acks=all).

    Concurrent publishes are batched per partition by the producer (``kafka_linger_ms``,
    ``kafka_max_batch_bytes``, ``kafka_compression`` in the settings).
    """
    return KafkaBroker(
        settings.kafka_bootstrap,
        client_id=f"cityhelp-{service}",
        acks="all",
        enable_idempotence=True,
        linger_ms=settings.kafka_linger_ms,
        max_batch_size=settings.kafka_max_batch_bytes,
        compression_type=(
            None if settings.kafka_compression == "none" else settings.kafka_compression
        ),
        security=kafka_security(settings),
        middlewares=(KafkaPrometheusMiddleware(registry=registry(), app_name=service),),
        # FastStream's own lines go through our (JSON) handlers; its per-record
        # "Received/Processed" lines stay out of INFO.
        logger=logging.getLogger("faststream"),
        log_level=logging.DEBUG,
        graceful_timeout=15.0,
    )


class EventBus:
    """Publishes the contract's events: key = request id, value = JSON, CloudEvents headers."""

    def __init__(self, broker: KafkaBroker, names: TopicNames, *, source: str) -> None:
        self._broker = broker
        self._names = names
        self.source = source
        self._publishers: dict[Topic, Any] = {}
        self._published: dict[Topic, Any] = {}  # emit_all's counters, by topic

    def declare(self, topic: Topic, *, schema: type[BaseModel] | None = None) -> None:
        """Register a topic this service writes (documented in its AsyncAPI)."""
        if topic not in self._publishers:
            self._publishers[topic] = self._broker.publisher(
                self._names(topic), schema=schema, title=f"{self._names(topic)}:publish"
            )

    async def emit(
        self,
        topic: Topic,
        value: BaseModel,
        *,
        key: str,
        name: str,
        event_id: str,
        subject: str | None = None,
        cause: Envelope | None = None,
    ) -> Envelope:
        """Publish one event and wait until the broker acknowledged it (acks=all)."""
        record = self.prepare(
            topic, value, key=key, name=name, event_id=event_id, subject=subject, cause=cause
        )
        await self.emit_one(record)
        return record.envelope

    async def emit_one(self, record: Outgoing) -> None:
        """Publish a prepared record through FastStream's publisher (:meth:`emit_raw`)."""
        await self.emit_raw(
            record.topic, record.value, key=record.key, headers=record.envelope.headers()
        )

    def _envelope(self, event_id: str, name: str, subject: str, cause: Envelope | None) -> Envelope:
        """The envelope of an event of this service, now; ``cause``: what it follows from."""
        return Envelope(
            id=event_id,
            type=event_type(name),
            source=self.source,
            subject=subject,
            time=utcnow(),
            trace_id=(cause.trace_id or cause.id) if cause else event_id,
            causation_id=cause.id if cause else None,
        )

    @contextlib.contextmanager
    def _renewing_refused_sequence(
        self, topic: Topic, producer: AIOKafkaProducer | None
    ) -> Iterator[None]:
        """A refused sequence renews the producer id (:meth:`_renew_if_refused`); the error
        goes on to the caller, and its retry goes through."""
        try:
            yield
        except (OutOfOrderSequenceNumber, UnknownProducerId) as exc:
            self._renew_if_refused(exc, topic, producer)
            raise

    def _renew_if_refused(
        self, exc: BaseException, topic: Topic, producer: AIOKafkaProducer | None
    ) -> None:
        """The broker lost track of this producer's sequence (a batch that timed out while the
        broker was away still used up its numbers): the producer would be refused for ever, so
        it takes a new producer id."""
        if isinstance(exc, OutOfOrderSequenceNumber | UnknownProducerId) and reset_idempotence(
            producer
        ):
            logger.warning(
                "the broker refused the producer's sequence; producer id renewed",
                extra={"topic": self._names(topic)},
            )

    async def emit_raw(
        self, topic: Topic, value: bytes, *, key: bytes | str | None, headers: Mapping[str, str]
    ) -> None:
        publisher = self._publisher(topic)
        raw_key = key.encode("utf-8") if isinstance(key, str) else key
        with self._renewing_refused_sequence(topic, aiokafka_producer(self._broker)):
            await publisher.publish(value, key=raw_key, headers=dict(headers))

    async def emit_direct(
        self,
        topic: Topic,
        value: BaseModel,
        *,
        key: str,
        name: str,
        event_id: str,
        subject: str | None = None,
    ) -> Envelope:
        """:meth:`emit` of a first event (no cause), handed to the broker's aiokafka producer
        itself (see :meth:`emit_all`). Under ``TestKafkaBroker`` (no aiokafka producer) it is
        :meth:`emit`."""
        outgoing = self.prepare(
            topic, value, key=key, name=name, event_id=event_id, subject=subject
        )
        await self.emit_all([outgoing])
        return outgoing.envelope

    def prepare(
        self,
        topic: Topic,
        value: BaseModel,
        *,
        key: str,
        name: str,
        event_id: str,
        subject: str | None = None,
        cause: Envelope | None = None,
    ) -> Outgoing:
        """The record :meth:`emit` would publish, its envelope stamped now, for :meth:`emit_all`."""
        envelope = self._envelope(event_id, name, subject or key, cause)
        return Outgoing(topic, value.model_dump_json().encode("utf-8"), key, envelope)

    async def emit_all(self, records: Sequence[Outgoing]) -> None:
        """Publish the records together and wait until the broker acknowledged every one.

        Each goes to the broker's aiokafka producer itself: the same record as :meth:`emit`'s
        (topic, key, value, and the headers in the order FastStream sends them, its
        ``correlation_id`` included), without the middleware chain and the task FastStream
        builds per publish (measured: 12–31% of a stage's CPU). FastStream's Prometheus publish
        metrics are not kept for these records: ``cityhelp_published_records_total`` counts
        them. The first failure is raised once all have finished. Under ``TestKafkaBroker``
        (no aiokafka producer) each goes through :meth:`emit_raw`, one after the other: the
        producer keeps the records of a partition in the order given, and so does this."""
        producer = aiokafka_producer(self._broker)
        if producer is None:
            results: list[Any] = []
            for record in records:
                try:
                    await self.emit_one(record)
                except Exception as exc:
                    results.append(exc)
                else:
                    results.append(None)
        else:
            results = await self._send_all(producer, records)
        failed: BaseException | None = None
        for record, result in zip(records, results, strict=True):
            if not isinstance(result, BaseException):
                if producer is not None:
                    self._count(record.topic)
            elif failed is None:
                failed = result
                self._renew_if_refused(result, record.topic, producer)
        if failed is not None:
            raise failed

    async def _send_all(self, producer: AIOKafkaProducer, records: Sequence[Outgoing]) -> list[Any]:
        """Each record's acknowledgement or error; a record the producer did not take (its
        buffer stayed full, it stopped) fails with the records after it."""
        futures: list[asyncio.Future[Any]] = []
        refused: BaseException | None = None
        for record in records:
            try:
                futures.append(await self._send(producer, record))
            except Exception as exc:
                refused = exc
                break
        results: list[Any] = list(await asyncio.gather(*futures, return_exceptions=True))
        if refused is not None:
            results.extend([refused] * (len(records) - len(results)))
        return results

    async def _send(self, producer: AIOKafkaProducer, record: Outgoing) -> asyncio.Future[Any]:
        """Hand one record to the producer (it waits only while the producer's buffer is full);
        the future resolves once the broker acknowledged it."""
        # FastStream's record: its content-type (of bytes: none) and correlation_id first,
        # then the envelope's headers (whose content-type takes the first place's value).
        headers = {"content-type": "", "correlation_id": str(uuid.uuid4())}
        headers.update(record.envelope.headers())
        future: asyncio.Future[Any] = await producer.send(
            self._publisher(record.topic).topic,
            value=record.value,
            key=record.key.encode("utf-8"),
            headers=[(k, v.encode()) for k, v in headers.items()],
        )
        return future

    def _publisher(self, topic: Topic) -> Any:
        publisher = self._publishers.get(topic)
        if publisher is None:
            raise KeyError(f"topic {topic} was not declared by {self.source}")
        return publisher

    def _count(self, topic: Topic) -> None:
        published = self._published.get(topic)
        if published is None:
            service = self.source.rsplit("/", 1)[-1]  # the source is cityhelp/<service>
            published = PUBLISHED_RECORDS.labels(service, self._names(topic))
            self._published[topic] = published
        published.inc()


@dataclass(frozen=True, slots=True)
class Outgoing:
    """An event ready to publish (:meth:`EventBus.prepare`): key = request id, value = JSON."""

    topic: Topic
    value: bytes
    key: str
    envelope: Envelope


def aiokafka_producer(broker: KafkaBroker) -> AIOKafkaProducer | None:
    """The aiokafka producer under a started FastStream broker (None before start)."""
    state = getattr(broker.config.producer, "_producer", None)
    producer = getattr(state, "producer", None)
    return producer if isinstance(producer, AIOKafkaProducer) else None


def reset_idempotence(producer: AIOKafkaProducer | None) -> bool:
    """Make an idempotent (not transactional) producer ask the broker for a new producer id
    and start its sequence numbers again, as Kafka's own client does after a sequence error.

    aiokafka keeps the old id and numbers after ``OutOfOrderSequenceNumber`` and every later
    send is refused (aio-libs/aiokafka#1017); its sender asks for an id whenever it has none.
    Records sent again under the new id may be stored twice: consumers drop repeats by the
    effect's key, as they do for any redelivery. Returns False when there is nothing to reset.
    """
    manager = getattr(producer, "_txn_manager", None)
    if manager is None or manager.transactional_id is not None:
        return False
    manager._pid_and_epoch = PidAndEpoch(NO_PRODUCER_ID, NO_PRODUCER_EPOCH)
    manager._pid_waiter = asyncio.get_running_loop().create_future()
    manager._sequence_numbers.clear()
    return True


def effect_id(stage: str, *parts: str) -> str:
    """The id of an effect a stage produces from an input; stable across redeliveries."""
    return derive_id(stage, *parts)


async def ensure_topics(settings: ServiceSettings, *, attempts: int = 30) -> list[str]:
    """Create the contract's topics that are missing; returns the names created."""
    names = TopicNames(settings.topic_prefix)
    wanted = load_topic_specs(
        settings.config_dir / "topics.toml",
        replication_factor=settings.kafka_replication_factor,
        min_insync_replicas=settings.kafka_min_insync_replicas,
    )
    # The same TLS/SASL options as every other client of the service (shared.lag).
    admin = AIOKafkaAdminClient(client_id="cityhelp-topics", **client_options(settings))
    await retrying(
        admin.start,
        what=f"connecting to Kafka at {settings.kafka_bootstrap}",
        attempts=attempts,
        retry_on=(KafkaConnectionError,),
    )
    try:
        existing = set(await admin.list_topics())
        missing = [new_topic(names(topic), spec) for topic, spec in wanted.items()]
        missing = [new for new in missing if new.name not in existing]
        created: list[str] = []
        for new in missing:
            try:
                response = await admin.create_topics([new])
            except TopicAlreadyExistsError:
                continue
            if _topic_created(response, new.name):
                created.append(new.name)
        return created
    finally:
        await admin.close()


def new_topic(name: str, spec: TopicSpec) -> NewTopic:
    """The CreateTopics entry of one topic: its partitions, replicas and min.insync.replicas
    (with acks=all, a write is refused rather than kept by fewer replicas than that)."""
    return NewTopic(
        name,
        num_partitions=spec.partitions,
        replication_factor=spec.replication_factor,
        topic_configs={"min.insync.replicas": str(spec.min_insync_replicas)},
    )


# Kafka error codes for which a missing topic is left to the operator instead of failing start-up:
# already created by someone else, or not ours to create (with ACLs, services have no Create
# right and do not even see topics they may not describe; the operator creates them as admin).
_TOPIC_EXISTS = 36
_NOT_ALLOWED = frozenset({29, 31})  # TOPIC_ / CLUSTER_AUTHORIZATION_FAILED


def _topic_created(response: Any, name: str) -> bool:
    """True if the CreateTopics ``response`` created ``name``; raises on an unexpected error."""
    for entry in response.topic_errors:
        topic, code = entry[0], entry[1]
        if topic != name or code in (0, _TOPIC_EXISTS):
            continue
        if code in _NOT_ALLOWED:
            logger.warning("not allowed to create topic %s; the operator must create it", name)
            return False
        raise for_code(code)(f"creating topic {name}")
    return all(entry[1] == 0 for entry in response.topic_errors if entry[0] == name)
