"""Idempotent consumers: decode the envelope, run the handler in a Postgres transaction that also records
the message id, retry with backoff, and park what still fails on `<topic>.dlq` so the consumer moves on. The records
of one poll share one transaction and one offset commit; if any of them fails there, each is handled again on its
own, so a bad message costs its neighbours nothing but a second try. An outage
of what the handler needs (the database, the broker, a service) is not the message's fault: it is never
dead-lettered, but handed back to the broker (nack) to be delivered again until the outage is over."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
import traceback
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaConnectionError
from faststream import AckPolicy
from faststream.kafka import KafkaMessage
from modelops_contracts import Envelope, EnvelopeError, Message, Topic, decode
from opentelemetry import propagate, trace
from tenacity import AsyncRetrying, retry_if_not_exception_type, stop_after_attempt, wait_exponential

from ..settings import Settings
from ..telemetry import CONSUMER_LAG, MESSAGES_DEAD_LETTERED, MESSAGES_DUPLICATE
from .incarnations import Incarnations, ReadRecreatedFromStart
from .outbox import enqueue
from .publisher import Bus

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

DLQ_HEADER_PREFIX = "dlq_"


class PermanentError(Exception):
    """A handler's verdict that retrying cannot help (a rule broken, a reference that will never exist)."""


# Postgres error classes of the server's state, not of the statement: connection exception, insufficient resources,
# operator intervention (a restart, a shutdown).
_OUTAGE_SQLSTATE_CLASSES = ("08", "53", "57")


def is_outage(error: BaseException) -> bool:
    """Whether `error` says that infrastructure is away (connection refused or lost, a timeout, a database starting
    or shutting down, the broker unreachable) rather than that this message cannot be handled."""
    if isinstance(error, asyncpg.DataError | asyncpg.ClientConfigurationError):
        return False  # asyncpg's client-side refusals of a value or a setting: the message's or the code's fault
    if isinstance(error, ConnectionError | TimeoutError | socket.gaierror | asyncpg.InterfaceError):
        return True
    if isinstance(error, KafkaConnectionError | httpx.NetworkError | httpx.TimeoutException):
        return True
    sqlstate = getattr(error, "sqlstate", None)
    return isinstance(error, asyncpg.PostgresError) and str(sqlstate or "")[:2] in _OUTAGE_SQLSTATE_CLASSES


def handler_retries(settings: Settings) -> AsyncRetrying:
    """Bounded attempts with exponential backoff; a PermanentError stops at once. The last error is re-raised.
    Cancellation is never retried: tenacity catches BaseException, so without that a consumer being stopped would
    sleep and run the handler again instead of ending."""
    return AsyncRetrying(
        stop=stop_after_attempt(settings.consumer_max_retries + 1),
        wait=wait_exponential(multiplier=settings.consumer_retry_backoff_s, max=30),
        retry=retry_if_not_exception_type((PermanentError, asyncio.CancelledError)),
        reraise=True,
    )


@dataclass
class MessageContext:
    """What a handler gets besides the body: the envelope and the transaction its effects must use."""

    envelope: Envelope
    conn: asyncpg.Connection
    bus: Bus

    async def emit(self, message: Message) -> Envelope:
        """Announce a consequence through the outbox: it leaves only if this message's effects commit."""
        return await enqueue(self.conn, self.bus, message, causation=self.envelope)


Handler = Callable[[Message, MessageContext], Awaitable[None]]


@dataclass(frozen=True)
class Delivery:
    """A decoded record: what a handler is given, and where it came from."""

    envelope: Envelope
    body: Message
    record: ConsumerRecord[bytes, bytes]
    headers: dict[str, str]


def headers_of(record: ConsumerRecord[bytes, bytes]) -> dict[str, str]:
    return {name: value.decode() for name, value in record.headers}


async def dead_letter(
    bus: Bus,
    record: ConsumerRecord[bytes, bytes],
    headers: dict[str, str],
    *,
    dlq: str,
    consumer: str,
    error: BaseException,
    attempts: int,
) -> None:
    """Park a record on `dlq` with why it failed. If this publish fails, the error propagates, the offset is not
    committed, and the record comes again."""
    log.error(
        "dead-lettering message",
        extra={"topic": record.topic, "offset": record.offset, "error": repr(error), "attempts": attempts},
    )
    await bus.broker.publish(
        record.value, topic=dlq, key=record.key, headers=dead_letter_headers(headers, record, consumer, error, attempts)
    )
    MESSAGES_DEAD_LETTERED.labels(record.topic, consumer).inc()


def processing_span(delivery: Delivery) -> AbstractContextManager[trace.Span]:
    """The handler's span, a child of the span that published the message (not of the poll that fetched it)."""
    context = propagate.extract(delivery.headers)
    name = f"{delivery.record.topic} process"
    return tracer.start_as_current_span(name, context=context, kind=trace.SpanKind.CONSUMER)


class IdempotentConsumer:
    """At-least-once in, exactly-once effect: a message's id is recorded in the handler's own transaction."""

    def __init__(
        self,
        bus: Bus,
        pool: asyncpg.Pool,
        topic: Topic,
        group: str,
        handler: Handler,
    ) -> None:
        self.bus = bus
        self.pool = pool
        self.topic = topic
        self.group = group
        self.handler = handler
        self._outages: dict[tuple[str, int, int], float] = {}  # message position -> when it first met an outage

    def subscribe(self) -> None:
        """Register on the bus's broker; it consumes once the bus starts. Offsets are committed only after
        `process` returns, and a crash before that redelivers the poll. A recreated topic is read from its
        beginning (see `incarnations`)."""
        settings = self.bus.settings
        session_ms = settings.kafka_session_timeout_ms
        incarnations = Incarnations(self.pool, self.bus.kafka, self.group)
        subscriber = self.bus.broker.subscriber(
            self.topic.name,
            batch=True,
            max_records=settings.consumer_batch_max,
            # FastStream sleeps this long after a poll that found nothing: it bounds the latency an idle consumer adds.
            batch_timeout_ms=settings.consumer_idle_poll_ms,
            group_id=self.group,
            auto_offset_reset="earliest",
            ack_policy=AckPolicy.NACK_ON_ERROR,
            session_timeout_ms=session_ms,
            heartbeat_interval_ms=max(session_ms // 3, 100),
            fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
            listener=ReadRecreatedFromStart(incarnations, lambda: subscriber.consumer),
        )
        subscriber(self.process)

    async def process(self, msg: KafkaMessage) -> None:
        """Handle one poll's records: all in one transaction when they all succeed, else each on its own."""
        records = _records_of(msg)
        self._record_lag(msg, records)
        deliveries = [delivery for record in records if (delivery := await self._decoded(record)) is not None]
        if len(deliveries) > 1 and await self._applied_together(deliveries):
            return
        for delivery in deliveries:
            await self._process_one(delivery)

    async def _decoded(self, record: ConsumerRecord[bytes, bytes]) -> Delivery | None:
        headers = headers_of(record)
        try:
            envelope, body = decode(record.key, record.value, headers)
        except EnvelopeError as error:
            await self._dead_letter(record, headers, error, attempts=1)
            return None
        return Delivery(envelope, body, record, headers)

    async def _applied_together(self, deliveries: list[Delivery]) -> bool:
        """One transaction for the whole poll: the message ids in one statement, then every new message's handler.
        False (and nothing applied) when any of them failed; the caller then handles each on its own."""
        duplicates: list[Delivery] = []
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                first_time = await self._record_first_time(conn, deliveries)
                for delivery in deliveries:
                    if delivery.envelope.id not in first_time:
                        duplicates.append(delivery)
                        continue
                    first_time.discard(delivery.envelope.id)  # the same message twice in one poll applies once
                    with processing_span(delivery):
                        await self.handler(delivery.body, MessageContext(delivery.envelope, conn, self.bus))
        except Exception:
            log.warning("a poll's transaction failed; handling its messages one by one", exc_info=True)
            return False
        for delivery in duplicates:  # counted once the poll committed: a failed poll's are counted one by one
            self._skip_duplicate(delivery)
        return True

    async def _process_one(self, delivery: Delivery) -> None:
        """Apply once, retry transient failures, dead-letter what cannot be handled, hand outages back."""
        record = delivery.record
        attempts = 0
        try:
            with processing_span(delivery):
                async for attempt in handler_retries(self.bus.settings):
                    with attempt:
                        attempts += 1
                        await self._apply_once(delivery)
        except Exception as error:
            if is_outage(error) and not self._outage_outlasted(record):
                log.warning(
                    "outage while handling a message; it will be delivered again",
                    extra={"topic": record.topic, "offset": record.offset, "error": repr(error)},
                )
                raise  # NACK_ON_ERROR: the consumer seeks back to the poll's first record; what committed is skipped
            await self._dead_letter(record, delivery.headers, error, attempts=attempts)
        self._outages.pop(_position(record), None)

    def _outage_outlasted(self, record: ConsumerRecord[Any, Any]) -> bool:
        """Whether this message has met "outages" for longer than `consumer_outage_max_s`: then it is more likely the
        message's own fault (a query it makes too slow, say) than the infrastructure's, and it is dead-lettered."""
        first = self._outages.setdefault(_position(record), time.monotonic())
        return time.monotonic() - first > self.bus.settings.consumer_outage_max_s

    async def _apply_once(self, delivery: Delivery) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            if not await self._record_first_time(conn, [delivery]):
                self._skip_duplicate(delivery)
                return
            await self.handler(delivery.body, MessageContext(delivery.envelope, conn, self.bus))

    async def _record_first_time(self, conn: asyncpg.Connection, deliveries: list[Delivery]) -> set[str]:
        """Record the deliveries' message ids as processed by this group; the ids that were not already."""
        rows = await conn.fetch(
            'INSERT INTO processed_messages (consumer, message_id, topic, partition, "offset")'
            " SELECT $1, * FROM unnest($2::text[], $3::text[], $4::integer[], $5::bigint[])"
            " ON CONFLICT DO NOTHING RETURNING message_id",
            self.group,
            [d.envelope.id for d in deliveries],
            [d.record.topic for d in deliveries],
            [d.record.partition for d in deliveries],
            [d.record.offset for d in deliveries],
        )
        return {row["message_id"] for row in rows}

    async def _dead_letter(
        self, record: ConsumerRecord[bytes, bytes], headers: dict[str, str], error: BaseException, *, attempts: int
    ) -> None:
        dlq = self.topic.dlq
        await dead_letter(self.bus, record, headers, dlq=dlq, consumer=self.group, error=error, attempts=attempts)

    def _skip_duplicate(self, delivery: Delivery) -> None:
        record = delivery.record
        MESSAGES_DUPLICATE.labels(record.topic, self.group).inc()
        log.info("skipping duplicate %s", delivery.envelope.id, extra={"topic": record.topic, "offset": record.offset})

    def _record_lag(self, msg: KafkaMessage, records: tuple[ConsumerRecord[bytes, bytes], ...]) -> None:
        consumer = msg.consumer
        if not isinstance(consumer, AIOKafkaConsumer) or not records:
            return  # FastStream's test client has no broker positions to compare with
        last = {(record.topic, record.partition): record.offset for record in records}
        for (topic, partition), offset in last.items():
            highwater = consumer.highwater(TopicPartition(topic, partition))
            if highwater is not None:
                CONSUMER_LAG.labels(topic, str(partition), self.group).set(max(highwater - offset - 1, 0))


def _position(record: ConsumerRecord[Any, Any]) -> tuple[str, int, int]:
    return record.topic, record.partition, record.offset


def _records_of(msg: KafkaMessage) -> tuple[ConsumerRecord[bytes, bytes], ...]:
    records = msg.raw_message
    if not isinstance(records, tuple):
        raise TypeError("IdempotentConsumer handles a poll's batch of records (subscribe with batch=True)")
    return records


def dead_letter_headers(
    headers: dict[str, str], record: ConsumerRecord[Any, Any], consumer: str, error: BaseException, attempts: int
) -> dict[str, str]:
    """The original headers plus `dlq_*` headers saying where the message came from and why it failed."""
    return {
        **headers,
        f"{DLQ_HEADER_PREFIX}error": str(error)[:2000],
        f"{DLQ_HEADER_PREFIX}error_type": type(error).__name__,
        f"{DLQ_HEADER_PREFIX}stack": "".join(traceback.format_exception(error))[-4000:],
        f"{DLQ_HEADER_PREFIX}original_topic": record.topic,
        f"{DLQ_HEADER_PREFIX}original_partition": str(record.partition),
        f"{DLQ_HEADER_PREFIX}original_offset": str(record.offset),
        f"{DLQ_HEADER_PREFIX}consumer": consumer,
        f"{DLQ_HEADER_PREFIX}attempts": str(attempts),
        f"{DLQ_HEADER_PREFIX}failed_at": datetime.now(UTC).isoformat(),
    }
