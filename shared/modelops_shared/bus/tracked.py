"""Tracked batch consumers: each batch's effects and its (topic, partition, offset) tracking rows commit in one
Postgres transaction, and assigned partitions resume from those rows rather than from Kafka's committed
offsets — exactly-once effect over at-least-once delivery, for projections that must not miss or repeat. A
position belongs to one incarnation of its topic (its topic id, see `incarnations`): a recreated topic is read from
its beginning.

The handler sees the whole batch at once, so it can write in bulk; when it fails, the batch is applied message
by message in savepoints, and only the message that still fails goes to the dead-letter topic."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from modelops_contracts import EnvelopeError, Topic, decode
from opentelemetry import propagate, trace
from tenacity import AsyncRetrying, wait_exponential

from ..telemetry import CONSUMER_LAG
from .consumer import Delivery, dead_letter, handler_retries, headers_of, processing_span
from .incarnations import Incarnations, while_paused
from .publisher import Bus

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

RecordBatch = dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]


BatchHandler = Callable[[asyncpg.Connection, Sequence[Delivery]], Awaitable[None]]
_CONNECTION_LOST = (asyncpg.InterfaceError, asyncpg.ConnectionDoesNotExistError)


class _ResumeFromTracking(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: TrackedConsumer) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        """Nothing to flush: progress lives in the database, committed with the effects it describes."""

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        await while_paused(self.owner.consumer, assigned, lambda: self.owner.seek_to_tracked(assigned))


class TrackedConsumer:
    """Applies `handler` to the messages of `topics`, one transaction per batch, under the name `name`."""

    def __init__(
        self,
        bus: Bus,
        pool: asyncpg.Pool,
        topics: Sequence[Topic],
        name: str,
        handler: BatchHandler,
        max_batch: int = 500,
    ) -> None:
        self.bus = bus
        self.pool = pool
        self.topics = {topic.name: topic for topic in topics}
        self.name = name
        self.handler = handler
        self.max_batch = max_batch
        settings = bus.settings
        self.backoff = settings.consumer_retry_backoff_s
        self.consumer = AIOKafkaConsumer(
            **bus.kafka.aiokafka(),
            group_id=name,
            client_id=f"{settings.service_name}-{name}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=settings.kafka_session_timeout_ms,
            heartbeat_interval_ms=max(settings.kafka_session_timeout_ms // 3, 100),
            fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
        )
        self.incarnations = Incarnations(pool, bus.kafka, name)
        self.topic_ids: dict[str, str] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.consumer.subscribe(list(self.topics), listener=_ResumeFromTracking(self))
        await self.consumer.start()
        self._task = asyncio.create_task(self._run(), name=f"tracked-consumer-{self.name}")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.consumer.stop()

    async def seek_to_tracked(self, partitions: Sequence[TopicPartition]) -> None:
        """Resume each partition after its tracked position in the topic's current incarnation; a partition with
        none there (new, or its topic recreated) is read from the beginning."""
        if not partitions:
            return
        ids = await self.incarnations.current(partitions)
        async with self.pool.acquire() as conn, conn.transaction():
            for topic, topic_id in ids.items():
                # Positions recorded before topic ids were belong to the first incarnation seen since.
                await conn.execute(
                    "UPDATE tracking SET topic_id = $3 WHERE consumer = $1 AND topic = $2 AND topic_id = ''"
                    " AND NOT EXISTS (SELECT 1 FROM tracking WHERE consumer = $1 AND topic = $2 AND topic_id <> '')",
                    self.name,
                    topic,
                    topic_id,
                )
            rows = await conn.fetch(
                'SELECT topic, partition, "offset" FROM tracking WHERE consumer = $1 AND topic_id = any($2::text[])',
                self.name,
                list(ids.values()),
            )
        self.topic_ids.update(ids)
        await self.incarnations.record(ids, partitions)
        tracked = {(row["topic"], row["partition"]): row["offset"] for row in rows}
        for tp in partitions:
            offset = tracked.get((tp.topic, tp.partition))
            if offset is None:
                await self.consumer.seek_to_beginning(tp)
            else:
                self.consumer.seek(tp, offset + 1)

    async def _run(self) -> None:
        while True:
            batch: RecordBatch = await self.consumer.getmany(timeout_ms=500, max_records=self.max_batch)
            if not batch:
                continue
            # A failed batch rolled back whole; trying it again is safe, and skipping it would lose events.
            async for attempt in AsyncRetrying(wait=wait_exponential(multiplier=self.backoff, max=30)):
                with attempt:
                    try:
                        await self.apply_batch(batch)
                    except Exception:
                        log.exception("batch failed; retrying", extra={"consumer": self.name})
                        raise
            self._after_commit(batch)

    async def apply_batch(self, batch: RecordBatch) -> None:
        """One transaction: the batch's effects, then the tracking row of each partition it advanced."""
        async with self.pool.acquire() as conn, conn.transaction():
            deliveries = [
                delivery
                for records in batch.values()
                for record in records
                if (delivery := await self._decoded(record)) is not None
            ]
            if deliveries:
                links = [
                    trace.Link(trace.get_current_span(propagate.extract(d.headers)).get_span_context())
                    for d in deliveries
                ]
                with tracer.start_as_current_span(f"{self.name} batch", kind=trace.SpanKind.CONSUMER, links=links):
                    await self._apply_deliveries(conn, deliveries)
            await conn.executemany(
                'INSERT INTO tracking (consumer, topic, topic_id, partition, "offset") VALUES ($1, $2, $3, $4, $5)'
                " ON CONFLICT (consumer, topic, topic_id, partition)"
                ' DO UPDATE SET "offset" = GREATEST(tracking."offset", excluded."offset")',
                [
                    (self.name, tp.topic, self.topic_ids[tp.topic], tp.partition, records[-1].offset)
                    for tp, records in batch.items()
                ],
            )

    async def _decoded(self, record: ConsumerRecord[bytes, bytes]) -> Delivery | None:
        headers = headers_of(record)
        try:
            envelope, body = decode(record.key, record.value, headers)
        except EnvelopeError as error:
            await self._dead_letter(record, headers, error, attempts=1)
            return None
        return Delivery(envelope, body, record, headers)

    async def _apply_deliveries(self, conn: asyncpg.Connection, deliveries: list[Delivery]) -> None:
        try:
            async with conn.transaction():  # a savepoint: a failed bulk attempt leaves nothing behind
                await self.handler(conn, deliveries)
            return
        except _CONNECTION_LOST:
            raise  # the connection is gone: the whole batch retries
        except Exception:
            log.warning("bulk apply failed; applying the batch message by message", exc_info=True)
        for delivery in deliveries:
            await self._apply_one(conn, delivery)

    async def _apply_one(self, conn: asyncpg.Connection, delivery: Delivery) -> None:
        with processing_span(delivery):
            attempts = 0
            try:
                async for attempt in handler_retries(self.bus.settings):
                    with attempt:
                        attempts += 1
                        async with conn.transaction():
                            await self.handler(conn, [delivery])
            except _CONNECTION_LOST:
                raise
            except Exception as error:
                await self._dead_letter(delivery.record, delivery.headers, error, attempts=attempts)

    async def _dead_letter(
        self, record: ConsumerRecord[bytes, bytes], headers: dict[str, str], error: BaseException, *, attempts: int
    ) -> None:
        dlq = self.topics[record.topic].dlq
        await dead_letter(self.bus, record, headers, dlq=dlq, consumer=self.name, error=error, attempts=attempts)

    def _after_commit(self, batch: RecordBatch) -> None:
        """Mirror progress into Kafka and the lag gauge, for operators; correctness never reads it back."""
        offsets = {tp: records[-1].offset + 1 for tp, records in batch.items()}
        commit = asyncio.create_task(self.consumer.commit(offsets))
        commit.add_done_callback(lambda task: task.cancelled() or task.exception())
        for tp, next_offset in offsets.items():
            highwater = self.consumer.highwater(tp)
            if highwater is not None:
                CONSUMER_LAG.labels(tp.topic, str(tp.partition), self.name).set(max(highwater - next_offset, 0))
