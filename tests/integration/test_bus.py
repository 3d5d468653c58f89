"""The bus against the real embedded broker and PostgreSQL: envelope and trace context across processes,
exactly-once effect under redelivery, dead-lettering, crash before commit, and the transactional outbox."""

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from modelops_contracts import Ping, encode
from modelops_contracts.catalog import DIAGNOSTICS_PINGS
from modelops_shared.bus import Bus, OutboxRelay, enqueue
from modelops_shared.bus.dlq import replay
from modelops_shared.db import apply_migrations, create_pool
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

WORKER = Path(__file__).with_name("bus_worker.py")
WAIT_S = 60


@pytest.fixture(scope="module")
def spans() -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


@pytest.fixture
async def bus(embedded_stack) -> Bus:
    bus = Bus(embedded_stack.model_copy(update={"service_name": "bus-test"}))
    await bus.start()
    yield bus
    await bus.stop()


@pytest.fixture
def schema() -> str:
    return f"bus_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def start_worker(embedded_stack) -> Iterator:
    processes: list[subprocess.Popen] = []

    def start(schema: str, group: str, mode: str = "normal", log: Path | None = None) -> subprocess.Popen:
        process = subprocess.Popen(
            [sys.executable, str(WORKER), schema, group, mode],
            stdout=subprocess.PIPE,
            stderr=log.open("w") if log else None,
            text=True,
            env=os.environ.copy(),
        )
        processes.append(process)
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready", "worker did not start"
        return process

    yield start
    for process in processes:
        process.kill()
        process.wait()


def _ping(payload: str = "") -> Ping:
    return Ping(ping_id=f"ping-{uuid.uuid4().hex[:12]}", sent_at=datetime.now(UTC), payload=payload)


async def _wait_for_rows(dsn: str, sql: str, *args, count: int = 1) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        for _ in range(WAIT_S * 10):
            try:
                rows = await conn.fetch(sql, *args)
            except asyncpg.UndefinedTableError:
                rows = []
            if len(rows) >= count:
                return rows
            await asyncio.sleep(0.1)
        raise AssertionError(f"timed out waiting for {count} rows of: {sql}")
    finally:
        await conn.close()


def _dsn(settings) -> str:
    return settings.database_url.get_secret_value()


async def test_event_crosses_processes_with_envelope_and_trace_context(
    embedded_stack, bus, schema, start_worker, spans
):
    start_worker(schema, f"g-{schema}")
    message = _ping()
    tracer = trace.get_tracer("test")

    with tracer.start_as_current_span("request") as request_span:
        envelope = await bus.publish(message, correlation_id="job-42")

    rows = await _wait_for_rows(
        _dsn(embedded_stack), f"SELECT * FROM {schema}.effects WHERE ping_id = $1", message.ping_id
    )
    row = rows[0]
    assert row["message_id"] == envelope.id
    assert row["type"] == "modelops.diagnostics.ping.v1"
    assert row["source"] == "/services/bus-test"
    assert row["subject"] == message.ping_id
    assert row["time"] == envelope.time
    assert row["correlation_id"] == "job-42"
    assert row["worker_pid"] != os.getpid()
    # One trace from the producing request to the consuming handler; the consumer's span is the child
    # of the span whose context the producer put in `traceparent`.
    trace_id = format(request_span.get_span_context().trace_id, "032x")
    assert row["trace_id"] == trace_id
    producer_spans = [s for s in spans.get_finished_spans() if s.kind == trace.SpanKind.PRODUCER]
    producer_ids = {
        format(s.context.span_id, "016x") for s in producer_spans if s.context.trace_id == int(trace_id, 16)
    }
    assert row["parent_span_id"] in producer_ids


async def test_duplicate_deliveries_take_effect_once(embedded_stack, bus, schema, start_worker):
    start_worker(schema, f"g-{schema}")
    message = _ping()
    record = encode(message, bus.envelope_for(message))
    for _ in range(5):  # the same event id delivered five times, as an at-least-once producer retry would
        await bus.publish_record(DIAGNOSTICS_PINGS.name, record)
    marker = _ping()
    await bus.publish(marker)

    await _wait_for_rows(_dsn(embedded_stack), f"SELECT 1 FROM {schema}.effects WHERE ping_id = $1", marker.ping_id)
    effects = await _wait_for_rows(
        _dsn(embedded_stack), f"SELECT 1 FROM {schema}.effects WHERE ping_id = $1", message.ping_id
    )
    assert len(effects) == 1


async def test_a_backlog_is_applied_a_poll_per_transaction(embedded_stack, bus, schema, start_worker):
    """Messages waiting when the consumer starts come in polls of many, each poll in one transaction (every row
    it writes has that transaction's start as `processed_at`) and each message applied once."""
    backlog = [_ping() for _ in range(40)]
    for message in backlog:
        await bus.publish(message)
    start_worker(schema, f"g-{schema}")

    dsn = _dsn(embedded_stack)
    ids = [message.ping_id for message in backlog]
    effects = await _wait_for_rows(
        dsn, f"SELECT message_id FROM {schema}.effects WHERE ping_id = any($1::text[])", ids, count=40
    )
    conn = await asyncpg.connect(dsn)
    try:
        transactions = await conn.fetchval(
            f"SELECT count(DISTINCT processed_at) FROM {schema}.processed_messages WHERE message_id = any($1)",
            [row["message_id"] for row in effects],
        )
    finally:
        await conn.close()
    assert len(effects) == 40
    assert transactions <= 5  # 40 messages; the first poll may hold only earlier tests' pings and a few of ours


async def test_a_failing_message_costs_its_poll_nothing(embedded_stack, bus, schema, start_worker):
    """A poll whose transaction fails is handled again message by message: the bad one is retried and
    dead-lettered with its own attempts, its neighbours in the poll take effect once."""
    before = [_ping() for _ in range(10)]
    failing = _ping("always-fails")
    after = [_ping() for _ in range(10)]
    for message in [*before, failing, *after]:
        await bus.publish(message)
    group = f"g-{schema}"
    start_worker(schema, group)

    ids = [message.ping_id for message in [*before, *after]]
    effects = await _wait_for_rows(
        _dsn(embedded_stack), f"SELECT ping_id FROM {schema}.effects WHERE ping_id = any($1::text[])", ids, count=20
    )
    assert sorted(row["ping_id"] for row in effects) == sorted(ids)
    key = failing.ping_id.encode()
    dead = {record.key: headers for record, headers in await _dead_letters(embedded_stack, group, key=key)}
    assert dead[key]["dlq_attempts"] == "4"  # the poll's failed transaction is not counted against it


async def _dead_letters(settings, group: str, expected: int = 1, key: bytes | None = None) -> list:
    consumer = AIOKafkaConsumer(
        DIAGNOSTICS_PINGS.dlq, bootstrap_servers=settings.kafka_bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    found = []
    try:
        async with asyncio.timeout(WAIT_S):
            while len(found) < expected or (key is not None and key not in [record.key for record, _ in found]):
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    for record in records:
                        headers = {k: v.decode() for k, v in record.headers}
                        if headers.get("dlq_consumer") == group:
                            found.append((record, headers))
    finally:
        await consumer.stop()
    return found


async def test_poison_messages_reach_the_dlq_and_the_consumer_carries_on(embedded_stack, bus, schema, start_worker):
    group = f"g-{schema}"
    start_worker(schema, group)
    not_an_event = b"\x00garbage"
    await bus.broker.publish(not_an_event, topic=DIAGNOSTICS_PINGS.name, key=b"poison", headers={"ce_id": "x"})
    failing = _ping("always-fails")
    await bus.publish(failing)
    refused = _ping("permanent")
    await bus.publish(refused)
    healthy = _ping()
    await bus.publish(healthy)

    await _wait_for_rows(_dsn(embedded_stack), f"SELECT 1 FROM {schema}.effects WHERE ping_id = $1", healthy.ping_id)
    dead = await _dead_letters(embedded_stack, group, expected=3)
    by_key = {record.key: headers for record, headers in dead}
    assert by_key[b"poison"]["dlq_error_type"] == "EnvelopeError"
    assert by_key[b"poison"]["dlq_attempts"] == "1"
    assert by_key[failing.ping_id.encode()]["dlq_error_type"] == "RuntimeError"
    assert by_key[failing.ping_id.encode()]["dlq_attempts"] == "4"  # the first try and three retries
    assert "always-fails" in by_key[failing.ping_id.encode()]["dlq_error"]
    assert by_key[refused.ping_id.encode()]["dlq_attempts"] == "1"  # permanent errors are not retried
    for headers in by_key.values():
        assert headers["dlq_original_topic"] == DIAGNOSTICS_PINGS.name
        assert "dlq_original_offset" in headers
    assert by_key[failing.ping_id.encode()]["ce_type"] == "modelops.diagnostics.ping.v1"  # original headers kept


async def test_an_outage_is_waited_out_and_never_dead_lettered(embedded_stack, bus, schema, start_worker):
    """A handler whose infrastructure is away for longer than one delivery's retries: the message is handed back to
    the broker and comes again until the outage ends; it takes effect once and never reaches the DLQ."""
    group = f"g-{schema}"
    start_worker(schema, group)
    caught = _ping("outage")
    await bus.publish(caught)
    effects = await _wait_for_rows(
        _dsn(embedded_stack), f"SELECT 1 FROM {schema}.effects WHERE ping_id = $1", caught.ping_id
    )
    assert len(effects) == 1
    parked = await replay(embedded_stack, DIAGNOSTICS_PINGS.name, consumer=group, dry_run=True)
    assert caught.ping_id.encode() not in [letter.key for letter in parked]


async def test_dead_letters_are_replayed_after_a_fix_once(embedded_stack, bus, schema, start_worker):
    group = f"g-{schema}"
    start_worker(schema, group)  # from the topic's start: earlier tests' poison is dead-lettered again by this group
    broken = _ping("needs-fix")
    await bus.publish(broken)
    key = broken.ping_id.encode()

    async def parked() -> list[bytes | None]:
        return [
            letter.key for letter in await replay(embedded_stack, DIAGNOSTICS_PINGS.name, consumer=group, dry_run=True)
        ]

    async with asyncio.timeout(WAIT_S):
        while key not in await parked():
            await asyncio.sleep(0.2)

    dsn = _dsn(embedded_stack)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"CREATE TABLE {schema}.fixes (id int)")  # the fix is deployed
    finally:
        await conn.close()
    replayed = {letter.key: letter for letter in await replay(embedded_stack, DIAGNOSTICS_PINGS.name, consumer=group)}
    assert replayed[key].topic == DIAGNOSTICS_PINGS.name
    assert "fixed once the table" in replayed[key].error
    await _wait_for_rows(dsn, f"SELECT 1 FROM {schema}.effects WHERE ping_id = $1", broken.ping_id)
    again = await replay(embedded_stack, DIAGNOSTICS_PINGS.name, consumer=group)
    assert key not in [letter.key for letter in again]  # replayed once: only what was dead-lettered since comes back


async def test_consumer_killed_before_commit_reprocesses_without_double_effect(
    embedded_stack, bus, schema, start_worker, tmp_path
):
    group = f"g-{schema}"
    doomed = start_worker(schema, group, mode="crash-after-commit")
    message = _ping()
    await bus.publish(message)
    assert doomed.wait(timeout=WAIT_S) == 9  # it handled a message, then died before the offset commit
    # The topic may hold earlier tests' pings: the doomed worker died after the first of them, whichever it was.
    dsn = _dsn(embedded_stack)
    first = (await _wait_for_rows(dsn, f"SELECT message_id FROM {schema}.effects"))[0]["message_id"]

    log = tmp_path / "replacement.log"
    start_worker(schema, group, log=log)  # the replacement is handed the same uncommitted message again
    await _wait_for_rows(dsn, f"SELECT 1 FROM {schema}.effects WHERE ping_id = $1", message.ping_id)

    assert f"skipping duplicate {first}" in log.read_text()  # redelivered, recognised, not applied twice
    doubled = await _wait_for_rows(
        dsn, f"SELECT message_id FROM {schema}.effects GROUP BY message_id HAVING count(*) > 1", count=0
    )
    assert doubled == []


async def test_outbox_publishes_only_committed_messages(embedded_stack, bus, schema):
    pool = await create_pool(embedded_stack, schema)
    await apply_migrations(pool, schema)
    consumer = AIOKafkaConsumer(bootstrap_servers=embedded_stack.kafka_bootstrap)
    await consumer.start()
    partition = TopicPartition(DIAGNOSTICS_PINGS.name, 0)
    consumer.assign([partition])
    await consumer.seek_to_end(partition)
    try:
        rolled_back, committed = _ping(), _ping()

        async def failing_state_change() -> None:
            async with pool.acquire() as conn, conn.transaction():
                await enqueue(conn, bus, rolled_back)
                raise RuntimeError("the state change failed")

        with pytest.raises(RuntimeError):
            await failing_state_change()
        async with pool.acquire() as conn, conn.transaction():
            await enqueue(conn, bus, committed, correlation_id="req-1")

        relay = OutboxRelay(pool, bus)
        assert await relay.relay_once() == 1
        assert await relay.relay_once() == 0
        assert await pool.fetchval("SELECT count(*) FROM outbox") == 0

        keys = []
        async with asyncio.timeout(WAIT_S):
            while committed.ping_id.encode() not in keys:
                batch = await consumer.getmany(partition, timeout_ms=500)
                keys += [record.key for record in batch.get(partition, [])]
        assert rolled_back.ping_id.encode() not in keys
        assert keys.count(committed.ping_id.encode()) == 1
    finally:
        await consumer.stop()
        await pool.close()


async def test_outbox_relay_wakes_on_commit(embedded_stack, bus, schema):
    pool = await create_pool(embedded_stack, schema)
    await apply_migrations(pool, schema)
    relay = asyncio.create_task(OutboxRelay(pool, bus, poll_interval=60).run())
    try:
        await asyncio.sleep(0.5)  # the relay is listening; its next poll is a minute away
        async with pool.acquire() as conn, conn.transaction():
            await enqueue(conn, bus, _ping())
        async with asyncio.timeout(10):
            while await pool.fetchval("SELECT count(*) FROM outbox"):
                await asyncio.sleep(0.05)
    finally:
        relay.cancel()
        await asyncio.gather(relay, return_exceptions=True)
        await pool.close()
