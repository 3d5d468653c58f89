"""Offsets mean something only within one incarnation of a topic.

A topic that is created again — the embedded broker keeps topics in memory and starts empty after a restart, or
an operator deleted and re-created it — starts again at offset 0, and an offset remembered from before would skip
its first messages. Kafka gives every incarnation its own topic id (KIP-516), so every consumer records which id it
read, per partition, and reads a partition of a new incarnation from its beginning; old records stay for the record.

aiokafka speaks Metadata up to v5, which carries no topic ids; confluent-kafka's admin client reads them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Sequence
from functools import cache

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from confluent_kafka import TopicCollection
from confluent_kafka.admin import AdminClient
from tenacity import AsyncRetrying, before_sleep_log, wait_exponential

from .access import KafkaAccess

log = logging.getLogger(__name__)

ADMIN_TIMEOUT_S = 10.0


@cache
def admin_client(kafka: KafkaAccess) -> AdminClient:
    """One admin client per cluster and process (it keeps connections and threads of its own)."""
    # librdkafka logs through Python logging rather than to stderr, and not every idle connection it closes.
    config: dict[str, str | int | float | bool] = {
        **kafka.librdkafka(),
        "client.id": "modelops-admin",
        "log.connection.close": False,
    }
    return AdminClient(config, logger=logging.getLogger("confluent_kafka"))


async def topic_ids(kafka: KafkaAccess, topics: Collection[str]) -> dict[str, str]:
    """The current id of each topic; raises when one does not exist."""
    if not topics:
        return {}
    futures = admin_client(kafka).describe_topics(TopicCollection(sorted(topics)), request_timeout=ADMIN_TIMEOUT_S)
    described = await asyncio.gather(*(asyncio.wrap_future(future) for future in futures.values()))
    return {description.name: str(description.topic_id) for description in described}


async def while_paused(
    consumer: AIOKafkaConsumer, partitions: Collection[TopicPartition], place: Callable[[], Awaitable[None]]
) -> None:
    """Run `place` (a rebalance listener's positioning) with `partitions` paused, retrying until it succeeds.

    aiokafka's fetcher keeps running while a listener awaits, and would hand out records from wherever Kafka's
    committed offset points; paused partitions' buffered records are discarded and fetched again on resume."""
    consumer.pause(*partitions)
    async for attempt in AsyncRetrying(
        wait=wait_exponential(multiplier=0.2, max=30), before_sleep=before_sleep_log(log, logging.WARNING)
    ):
        with attempt:
            await place()
    consumer.resume(*partitions)


class Incarnations:
    """What one consumer (a group, or a tracked consumer's name) knows of the topic incarnations it has read."""

    def __init__(self, pool: asyncpg.Pool, kafka: KafkaAccess, consumer: str) -> None:
        self.pool = pool
        self.kafka = kafka
        self.consumer = consumer

    async def current(self, partitions: Collection[TopicPartition]) -> dict[str, str]:
        return await topic_ids(self.kafka, {tp.topic for tp in partitions})

    async def changed(self, ids: dict[str, str], partitions: Collection[TopicPartition]) -> list[TopicPartition]:
        """The partitions last read in another incarnation than the current one. A partition never read before
        is not among them: a new consumer starts where its reset policy says."""
        rows = await self.pool.fetch(
            "SELECT DISTINCT ON (topic, partition) topic, partition, topic_id FROM topic_incarnations"
            " WHERE consumer = $1 ORDER BY topic, partition, first_seen DESC",
            self.consumer,
        )
        last = {(row["topic"], row["partition"]): row["topic_id"] for row in rows}
        return [tp for tp in partitions if last.get((tp.topic, tp.partition), ids[tp.topic]) != ids[tp.topic]]

    async def record(self, ids: dict[str, str], partitions: Collection[TopicPartition]) -> None:
        """Note that these partitions are now read in their current incarnation."""
        await self.pool.executemany(
            "INSERT INTO topic_incarnations (consumer, topic, partition, topic_id) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT DO NOTHING",
            [(self.consumer, tp.topic, tp.partition, ids[tp.topic]) for tp in partitions],
        )


class ReadRecreatedFromStart(ConsumerRebalanceListener):  # type: ignore[misc]
    """For consumers whose positions Kafka keeps (committed group offsets): a newly assigned partition of a
    recreated topic is read from its beginning, even where the group's committed offset would skip into it.

    The beginning is committed before the new incarnation is recorded, so a worker dying in between still leaves
    the next owner of the partition at the start. Re-reading is safe: these consumers are idempotent by message id
    or job id. `then` runs afterwards, for a consumer's own assignment logic."""

    def __init__(
        self,
        incarnations: Incarnations,
        consumer: Callable[[], AIOKafkaConsumer | None],
        then: ConsumerRebalanceListener | None = None,
    ) -> None:
        self.incarnations = incarnations
        self.consumer = consumer
        self.then = then

    async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        if self.then is not None:
            await self.then.on_partitions_revoked(revoked)

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        consumer = self.consumer()
        if assigned and consumer is not None:
            await while_paused(consumer, assigned, lambda: self._restart_recreated(consumer, assigned))
        if self.then is not None:
            await self.then.on_partitions_assigned(assigned)

    async def _restart_recreated(self, consumer: AIOKafkaConsumer, assigned: Sequence[TopicPartition]) -> None:
        ids = await self.incarnations.current(assigned)
        stale = await self.incarnations.changed(ids, assigned)
        settled = [tp for tp in assigned if tp not in stale]
        if stale:
            log.warning(
                "topic recreated since %s last read it; reading its partitions from the beginning",
                self.incarnations.consumer,
                extra={"partitions": [f"{tp.topic}[{tp.partition}]" for tp in stale]},
            )
            starts = await consumer.beginning_offsets(stale)
            for tp, offset in starts.items():
                consumer.seek(tp, offset)
            try:
                await consumer.commit(starts)
                settled += stale
            except KafkaError as error:
                # A newer rebalance is under way (retrying here would hold it up). Left unrecorded, the partitions
                # are found stale again by whoever is assigned them next.
                log.warning("could not commit the beginnings of recreated partitions: %s", error)
        await self.incarnations.record(ids, settled)
