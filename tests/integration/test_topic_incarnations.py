"""Offsets belong to one incarnation of a topic: a recreated topic (a restarted in-memory broker, or a topic deleted
and created again) is read from its beginning by every kind of consumer; and `down` drains what is in flight."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import asyncpg
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from confluent_kafka import ConsumerGroupTopicPartitions
from confluent_kafka import TopicPartition as KafkaPartition
from consumer_groups import skip_history
from modelops_contracts import Ping, Topic, encode
from modelops_contracts.catalog import DIAGNOSTICS_PINGS
from modelops_shared.bus import Bus, Delivery, IdempotentConsumer, MessageContext, TrackedConsumer, enqueue
from modelops_shared.bus.access import KafkaAccess
from modelops_shared.bus.incarnations import admin_client
from modelops_shared.db import apply_migrations, create_pool
from modelops_shared.devstack.drain import drain

WAIT_S = 60
BEFORE, AFTER = 2, 5  # more messages after than before, so an old position falls inside the new incarnation


@pytest.fixture
async def scratch(embedded_stack) -> AsyncIterator[tuple[Bus, asyncpg.Pool, Topic]]:
    """A bus, a pool on a schema of its own, and a one-partition topic of its own (deleted at the end)."""
    suffix = uuid.uuid4().hex[:10]
    topic = Topic(f"scratch-{suffix}", 1, "ping_id", ("test",), ("test",), (Ping,), "a topic this test recreates")
    schema = f"incarnations_{suffix}"
    pool = await create_pool(embedded_stack, schema)
    await apply_migrations(pool, schema)
    await pool.execute("CREATE TABLE seen (ping_id text NOT NULL)")  # the consumers' effect, committed or not at all
    bus = Bus(embedded_stack.model_copy(update={"service_name": "incarnations-test"}))
    await bus.start()
    await _recreate(embedded_stack.kafka_bootstrap, topic, delete=False)
    try:
        yield bus, pool, topic
    finally:
        await bus.stop()
        await pool.close()
        await _admin(embedded_stack.kafka_bootstrap, lambda admin: admin.delete_topics([topic.name]))


async def _admin(bootstrap: str, action: Callable[[AIOKafkaAdminClient], Awaitable[object]]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await action(admin)
    finally:
        await admin.close()


async def _recreate(bootstrap: str, topic: Topic, *, delete: bool = True) -> None:
    if delete:
        await _admin(bootstrap, lambda admin: admin.delete_topics([topic.name]))
    await _admin(bootstrap, lambda admin: admin.create_topics([NewTopic(topic.name, topic.partitions, 1)]))


async def _commit(bootstrap: str, group: str, topic: str, offset: int) -> None:
    request = [ConsumerGroupTopicPartitions(group, [KafkaPartition(topic, 0, offset)])]
    altered = await asyncio.wrap_future(
        admin_client(KafkaAccess(bootstrap)).alter_consumer_group_offsets(request)[group]
    )
    assert all(partition.error is None for partition in altered.topic_partitions)


async def _publish(bus: Bus, topic: Topic, count: int) -> set[str]:
    pings = [Ping(ping_id=f"ping-{uuid.uuid4().hex[:12]}", sent_at=datetime.now(UTC)) for _ in range(count)]
    for ping in pings:
        await bus.publish_record(topic.name, encode(ping, bus.envelope_for(ping)))
    return {ping.ping_id for ping in pings}


async def _until_seen(pool: asyncpg.Pool, expected: set[str]) -> None:
    async with asyncio.timeout(WAIT_S):
        while not expected <= {row["ping_id"] for row in await pool.fetch("SELECT ping_id FROM seen")}:
            await asyncio.sleep(0.05)


async def _seen_count(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM seen"))


async def test_a_tracked_consumer_reads_a_recreated_topic_from_its_beginning(embedded_stack, scratch):
    bus, pool, topic = scratch

    async def project(conn: asyncpg.Connection, deliveries: list[Delivery]) -> None:
        await conn.executemany("INSERT INTO seen VALUES ($1)", [(delivery.body.ping_id,) for delivery in deliveries])

    async def consume(expected: set[str]) -> None:
        consumer = TrackedConsumer(bus, pool, [topic], f"tracked-{topic.name}", project)
        await consumer.start()
        try:
            await _until_seen(pool, expected)
        finally:
            await consumer.stop()

    await consume(await _publish(bus, topic, BEFORE))
    await _recreate(embedded_stack.kafka_bootstrap, topic)
    await consume(await _publish(bus, topic, AFTER))

    rows = await pool.fetch('SELECT topic_id, "offset" FROM tracking ORDER BY "offset"')
    assert await _seen_count(pool) == BEFORE + AFTER  # each once
    assert [row["offset"] for row in rows] == [BEFORE - 1, AFTER - 1]  # the old position kept, not used
    assert rows[0]["topic_id"] != rows[1]["topic_id"]
    assert await pool.fetchval("SELECT count(DISTINCT topic_id) FROM topic_incarnations") == 2


async def test_an_idempotent_consumer_reads_a_recreated_topic_from_its_beginning(embedded_stack, scratch):
    bus, pool, topic = scratch
    group = f"idempotent-{topic.name}"
    # The group read an earlier incarnation up to offset BEFORE, and the broker kept that offset (tansu forgets a
    # deleted topic's offsets; Kafka may not), so it points into the new incarnation and would skip its start.
    await pool.execute(
        "INSERT INTO topic_incarnations (consumer, topic, partition, topic_id) VALUES ($1, $2, 0, 'earlier')",
        group,
        topic.name,
    )
    await _commit(embedded_stack.kafka_bootstrap, group, topic.name, BEFORE)
    published = await _publish(bus, topic, AFTER)

    async def handle(message: Ping, ctx: MessageContext) -> None:
        await ctx.conn.execute("INSERT INTO seen VALUES ($1)", message.ping_id)

    consumer_bus = Bus(embedded_stack.model_copy(update={"service_name": "incarnations-consumer"}))
    IdempotentConsumer(consumer_bus, pool, topic, group, handle).subscribe()
    await consumer_bus.start()
    try:
        await _until_seen(pool, published)
    finally:
        await consumer_bus.stop()
    assert await _seen_count(pool) == AFTER
    assert await pool.fetchval("SELECT count(DISTINCT topic_id) FROM topic_incarnations") == 2


async def test_drain_reports_unconsumed_messages_and_unpublished_outbox_rows_until_they_are_gone(
    embedded_stack, scratch
):
    bus, pool, _ = scratch
    schema = await pool.fetchval("SELECT current_schema()")
    group = f"drain-{schema}"
    # The group reads the pings topic (as its consumers record on assignment), and is behind on it.
    await pool.execute(
        "INSERT INTO topic_incarnations (consumer, topic, partition, topic_id) VALUES ($1, $2, 0, 'any')",
        group,
        DIAGNOSTICS_PINGS.name,
    )
    await bus.publish(Ping(ping_id=f"ping-{uuid.uuid4().hex[:12]}", sent_at=datetime.now(UTC)))
    async with pool.acquire() as conn, conn.transaction():
        await enqueue(conn, bus, Ping(ping_id="staged", sent_at=datetime.now(UTC)))

    left = await drain(embedded_stack, [schema], timeout_s=0.5)
    assert left.outbox == {schema: 1}
    assert any(group_ == group for group_, _, _ in left.lag)
    assert any(line.startswith(f"group {group}: {DIAGNOSTICS_PINGS.name}[") for line in left.lines())

    await pool.execute("DELETE FROM outbox")  # as the relay would once the broker acknowledged it
    await skip_history(embedded_stack, group, DIAGNOSTICS_PINGS)  # as the group would once it caught up
    assert not await drain(embedded_stack, [schema], timeout_s=5)
