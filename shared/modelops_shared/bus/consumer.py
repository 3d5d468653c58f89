"""Idempotent consumers: decode the envelope, run the handler in a Postgres transaction that also records
the message id, retry with backoff, and park what still fails on `<topic>.dlq` so the consumer moves on. An outage
of what the handler needs (the database, the broker, a service) is not the message's fault: it is never
dead-lettered, but handed back to the broker (nack) to be delivered again until the outage is over."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
import traceback
from collections.abc import Awaitable, Callable
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
from tenacity import AsyncRetrying, retry_if_not_exception_type, stop_after_attempt, wait_exponential

from ..settings import Settings
from ..telemetry import CONSUMER_LAG, MESSAGES_DEAD_LETTERED, MESSAGES_DUPLICATE
from .incarnations import Incarnations, ReadRecreatedFromStart
from .outbox import enqueue
from .publisher import Bus

log = logging.getLogger(__name__)

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
        `process` returns, and a crash before that redelivers the message. A recreated topic is read from its
        beginning (see `incarnations`)."""
        settings = self.bus.settings
        session_ms = settings.kafka_session_timeout_ms
        incarnations = Incarnations(self.pool, self.bus.kafka, self.group)
        subscriber = self.bus.broker.subscriber(
            self.topic.name,
            group_id=self.group,
            auto_offset_reset="earliest",
            ack_policy=AckPolicy.NACK_ON_ERROR,
            session_timeout_ms=session_ms,
            heartbeat_interval_ms=max(session_ms // 3, 100),
            fetch_max_wait_ms=50,
            listener=ReadRecreatedFromStart(incarnations, lambda: subscriber.consumer),
        )
        subscriber(self.process)

    async def process(self, msg: KafkaMessage) -> None:
        """Handle one record: apply once, retry transient failures, dead-letter what cannot be handled."""
        record = _record_of(msg)
        self._record_lag(msg)
        try:
            envelope, body = decode(record.key, msg.body, msg.headers)
        except EnvelopeError as error:
            await self._dead_letter(msg, error, attempts=1)
            return
        attempts = 0
        try:
            async for attempt in handler_retries(self.bus.settings):
                with attempt:
                    attempts += 1
                    await self._apply_once(msg, envelope, body)
        except Exception as error:
            if is_outage(error) and not self._outage_outlasted(record):
                log.warning(
                    "outage while handling a message; it will be delivered again",
                    extra={"topic": record.topic, "offset": record.offset, "error": repr(error)},
                )
                raise  # NACK_ON_ERROR: the consumer seeks back to this message, which comes again
            await self._dead_letter(msg, error, attempts=attempts)
        self._outages.pop(_position(record), None)

    def _outage_outlasted(self, record: ConsumerRecord[Any, Any]) -> bool:
        """Whether this message has met "outages" for longer than `consumer_outage_max_s`: then it is more likely the
        message's own fault (a query it makes too slow, say) than the infrastructure's, and it is dead-lettered."""
        first = self._outages.setdefault(_position(record), time.monotonic())
        return time.monotonic() - first > self.bus.settings.consumer_outage_max_s

    async def _apply_once(self, msg: KafkaMessage, envelope: Envelope, body: Message) -> None:
        record = _record_of(msg)
        async with self.pool.acquire() as conn, conn.transaction():
            first_time = await conn.fetchval(
                'INSERT INTO processed_messages (consumer, message_id, topic, partition, "offset")'
                " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING true",
                self.group,
                envelope.id,
                record.topic,
                record.partition,
                record.offset,
            )
            if not first_time:
                MESSAGES_DUPLICATE.labels(record.topic, self.group).inc()
                log.info("skipping duplicate %s", envelope.id, extra={"topic": record.topic, "offset": record.offset})
                return
            await self.handler(body, MessageContext(envelope=envelope, conn=conn, bus=self.bus))

    async def _dead_letter(self, msg: KafkaMessage, error: BaseException, *, attempts: int) -> None:
        record = _record_of(msg)
        log.error(
            "dead-lettering message",
            extra={"topic": record.topic, "offset": record.offset, "error": repr(error), "attempts": attempts},
        )
        headers = dead_letter_headers(msg.headers, record, self.group, error, attempts)
        # If this publish fails the exception propagates, the offset is not committed, and the message returns.
        await self.bus.broker.publish(msg.body, topic=self.topic.dlq, key=record.key, headers=headers)
        MESSAGES_DEAD_LETTERED.labels(record.topic, self.group).inc()

    def _record_lag(self, msg: KafkaMessage) -> None:
        record = _record_of(msg)
        consumer = msg.consumer
        if not isinstance(consumer, AIOKafkaConsumer):
            return  # FastStream's test client has no broker positions to compare with
        highwater = consumer.highwater(TopicPartition(record.topic, record.partition))
        if highwater is not None:
            lag = max(highwater - record.offset - 1, 0)
            CONSUMER_LAG.labels(record.topic, str(record.partition), self.group).set(lag)


def _position(record: ConsumerRecord[Any, Any]) -> tuple[str, int, int]:
    return record.topic, record.partition, record.offset


def _record_of(msg: KafkaMessage) -> ConsumerRecord[Any, Any]:
    record = msg.raw_message
    if isinstance(record, tuple):
        raise TypeError("IdempotentConsumer handles one record at a time, not batches")
    return record


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
