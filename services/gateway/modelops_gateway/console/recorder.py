"""The console's recorder: indexes the envelope of every message on every catalog topic and dead-letter topic in
`message_log`, so that the console can show a job's path across services without scanning Kafka. At least once:
rows are written, then offsets committed; a redelivered record writes its row again, to the same key. Records that
are no CloudEvent are indexed with what they have — an observer never dead-letters what it reads."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from functools import partial
from typing import TypeVar

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRecord
from aiokafka.errors import KafkaError
from modelops_contracts import all_topic_names
from modelops_contracts.envelope import CAUSATION_ID, CORRELATION_ID, TRACEPARENT
from modelops_shared.bus.access import KafkaAccess

from .domain import trace_id_of

log = logging.getLogger(__name__)

POLL_MS = 500
BATCH = 500
PRUNE_EVERY_S = 3600.0
RETRY_S = 2.0
OUTAGES = (KafkaError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError)
T = TypeVar("T")
UPSERT = """
INSERT INTO message_log (topic, partition, "offset", key, message_id, type, source, subject, correlation_id,
                         causation_id, trace_id, at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
ON CONFLICT (topic, partition, "offset") DO UPDATE SET
    key = excluded.key, message_id = excluded.message_id, type = excluded.type, source = excluded.source,
    subject = excluded.subject, correlation_id = excluded.correlation_id, causation_id = excluded.causation_id,
    trace_id = excluded.trace_id, at = excluded.at, recorded_at = now()
"""  # a topic deleted and created again reuses offsets: its new message replaces the stale row


def row_of(record: ConsumerRecord[bytes, bytes]) -> tuple[object, ...]:
    """The index row of one record: its place and its envelope headers."""
    headers = {name: value.decode(errors="replace") for name, value in record.headers}
    at = _parse_time(headers.get("ce_time")) or datetime.fromtimestamp(record.timestamp / 1000, UTC)
    return (
        record.topic,
        record.partition,
        record.offset,
        record.key.decode(errors="replace") if record.key else None,
        headers.get("ce_id"),
        headers.get("ce_type"),
        headers.get("ce_source"),
        headers.get("ce_subject"),
        headers.get(CORRELATION_ID),
        headers.get(CAUSATION_ID),
        trace_id_of(headers.get(TRACEPARENT)),
        at,
    )


class Recorder:
    def __init__(self, pool: asyncpg.Pool, kafka: KafkaAccess, group: str, retention_s: int) -> None:
        self.pool = pool
        self.retention_s = retention_s
        self._task: asyncio.Task[None] | None = None
        self.consumer = AIOKafkaConsumer(
            **kafka.aiokafka(), group_id=group, enable_auto_commit=False, auto_offset_reset="earliest"
        )

    @classmethod
    @asynccontextmanager
    async def running(
        cls, pool: asyncpg.Pool, kafka: KafkaAccess, group: str, retention_s: int
    ) -> AsyncIterator[Recorder]:
        recorder = cls(pool, kafka, group, retention_s)
        recorder.consumer.subscribe([name for name, _ in all_topic_names()])
        await recorder.consumer.start()
        recorder._task = asyncio.create_task(recorder._run(), name="console-recorder")
        recorder._task.add_done_callback(_report_end)
        try:
            yield recorder
        finally:
            recorder._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await recorder._task
            await recorder.consumer.stop()

    async def alive(self) -> bool:
        """For /readyz: false once the loop has ended on an error it could not survive."""
        return self._task is not None and not self._task.done()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        pruned = 0.0
        while True:
            batch = await self._again_on_outage(lambda: self.consumer.getmany(timeout_ms=POLL_MS, max_records=BATCH))
            records = [record for records in batch.values() for record in records]
            if records:
                # The same batch until it is in: the consumer's position has moved past it already.
                await self._again_on_outage(partial(self.record, records))
                try:
                    await self.consumer.commit()
                except KafkaError as error:  # a rebalance: whoever gets the partitions records them again, same rows
                    log.warning("console recorder: commit failed (%s)", error)
            if loop.time() - pruned > PRUNE_EVERY_S:
                await self._again_on_outage(self.prune)
                pruned = loop.time()

    async def _again_on_outage(self, step: Callable[[], Awaitable[T]]) -> T:
        while True:
            try:
                return await step()
            except OUTAGES as error:
                log.warning("console recorder: %s; trying again in %.0f s", error, RETRY_S)
                await asyncio.sleep(RETRY_S)

    async def record(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        async with self.pool.acquire() as conn:
            await conn.executemany(UPSERT, [row_of(record) for record in records])

    async def prune(self) -> int:
        """Forget messages recorded longer ago than the retention; how many."""
        deleted = await self.pool.execute(
            "DELETE FROM message_log WHERE recorded_at < now() - make_interval(secs => $1)", self.retention_s
        )
        return int(deleted.split()[-1])


def _report_end(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("the console recorder stopped; /readyz now fails", exc_info=task.exception())


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    with contextlib.suppress(ValueError):
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    return None
