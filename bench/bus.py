"""Bus benchmark: a ladder from bare aiokafka to the ModelOps consumer, each rung adding one layer, in one run.

    aiokafka       a producer (acks=all) and a consumer group loop: poll, commit the poll's offsets, arrived
    faststream     FastStream's KafkaBroker without middleware: publish; a batch subscriber commits its poll, arrived
    + middleware   our broker (`make_broker`: OpenTelemetry and Prometheus middleware) and the CloudEvents envelope,
                   encoded by the publisher and decoded by the consumer
    + idempotency  the IdempotentConsumer: a poll's message ids and handlers in one Postgres transaction, then the
                   offset commit

A message counts as arrived only after its offset commit, on every rung. Consumers fetch with a 5 ms max wait (see
`main`). Each rung gets a fresh topic of one
partition on the benchmark's own embedded stack (tansu + PostgreSQL); the rungs run in turn, three rounds, and
each figure is the median (min-max) of the rounds.

    python bench/bus.py [--pings 300] [--burst 2000] [--rounds 3]

Prints p50/p99 latency of sequential ping-pong and messages/s of a pipelined burst.
Targets (issue 23): + idempotency p50 ≤ 1.5 × aiokafka p50; ≥ 1,500 msg/s through the idempotent consumer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage
from figures import spread
from isolated_stack import isolated_stack
from modelops_contracts import Ping, decode, encode
from modelops_contracts.catalog import DIAGNOSTICS_PINGS
from modelops_shared.bus import Bus, IdempotentConsumer, MessageContext
from modelops_shared.bus.consumer import headers_of
from modelops_shared.db import apply_migrations, create_pool
from modelops_shared.settings import Settings
from modelops_shared.telemetry import configure_tracing

Send = Callable[[str], Awaitable[None]]
Arrivals = dict[str, asyncio.Future[float]]
Rung = Callable[[Settings, str], AbstractAsyncContextManager[tuple[Send, Arrivals]]]


def _percentile(samples: list[float], q: int) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1] if len(samples) > 1 else samples[0]


def _arrive(arrivals: Arrivals, keys: list[str]) -> None:
    now = time.perf_counter()
    for key in keys:
        future = arrivals.get(key)
        if future is not None and not future.done():
            future.set_result(now)


def _body(key: str) -> bytes:
    return json.dumps({"ping_id": key, "sent_at": datetime.now(UTC).isoformat()}).encode()


def _subscriber(settings: Settings, topic: str) -> dict[str, Any]:
    """FastStream subscriber options as the IdempotentConsumer's, but committing by hand, so arrival follows it."""
    return {
        "batch": True,
        "max_records": settings.consumer_batch_max,
        "batch_timeout_ms": settings.consumer_idle_poll_ms,
        "group_id": topic,
        "auto_offset_reset": "earliest",
        "ack_policy": AckPolicy.MANUAL,
        "fetch_max_wait_ms": settings.kafka_fetch_max_wait_ms,
    }


@asynccontextmanager
async def bare_aiokafka(settings: Settings, topic: str) -> AsyncIterator[tuple[Send, Arrivals]]:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=topic,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
    )
    arrivals: Arrivals = {}

    async def consume() -> None:
        while True:
            polled = await consumer.getmany(timeout_ms=500, max_records=settings.consumer_batch_max)
            if polled:
                await consumer.commit()
                _arrive(arrivals, [json.loads(r.value)["ping_id"] for records in polled.values() for r in records])

    async def send(key: str) -> None:
        await producer.send_and_wait(topic, _body(key), key=key.encode())

    await producer.start()
    await consumer.start()
    task = asyncio.create_task(consume())
    try:
        yield send, arrivals
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await consumer.stop()
        await producer.stop()


@asynccontextmanager
async def bare_faststream(settings: Settings, topic: str) -> AsyncIterator[tuple[Send, Arrivals]]:
    broker = KafkaBroker(settings.kafka_bootstrap, acks="all", logger=None)
    arrivals: Arrivals = {}

    @broker.subscriber(topic, **_subscriber(settings, topic))
    async def on_poll(msg: KafkaMessage) -> None:
        keys = [json.loads(record.value)["ping_id"] for record in msg.raw_message]
        await msg.ack()
        _arrive(arrivals, keys)

    async def send(key: str) -> None:
        await broker.publish(_body(key), topic=topic, key=key.encode())

    await broker.start()
    try:
        yield send, arrivals
    finally:
        await broker.stop()


@asynccontextmanager
async def with_middleware(settings: Settings, topic: str) -> AsyncIterator[tuple[Send, Arrivals]]:
    bus = Bus(settings)
    arrivals: Arrivals = {}

    @bus.broker.subscriber(topic, **_subscriber(settings, topic))
    async def on_poll(msg: KafkaMessage) -> None:
        keys = [decode(r.key, r.value, headers_of(r))[1].ping_id for r in msg.raw_message]  # type: ignore[attr-defined]
        await msg.ack()
        _arrive(arrivals, keys)

    await bus.start()
    try:
        yield _enveloped_send(bus, topic), arrivals
    finally:
        await bus.stop()


@asynccontextmanager
async def with_idempotency(settings: Settings, topic: str) -> AsyncIterator[tuple[Send, Arrivals]]:
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    pool = await create_pool(settings, schema)
    await apply_migrations(pool, schema)
    bus = Bus(settings)
    arrivals: Arrivals = {}
    handled: list[str] = []

    async def handle(message: Ping, ctx: MessageContext) -> None:
        handled.append(message.ping_id)

    consumer = IdempotentConsumer(bus, pool, replace(DIAGNOSTICS_PINGS, name=topic), topic, handle)  # type: ignore[arg-type]

    @bus.broker.subscriber(topic, **_subscriber(settings, topic))
    async def on_poll(msg: KafkaMessage) -> None:
        await consumer.process(msg)
        await msg.ack()
        _arrive(arrivals, handled)
        handled.clear()

    await bus.start()
    try:
        yield _enveloped_send(bus, topic), arrivals
    finally:
        await bus.stop()
        await pool.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await pool.close()


def _enveloped_send(bus: Bus, topic: str) -> Send:
    async def send(key: str) -> None:
        ping = Ping(ping_id=key, sent_at=datetime.now(UTC))
        await bus.publish_record(topic, encode(ping, bus.envelope_for(ping)))

    return send


RUNGS: dict[str, Rung] = {
    "aiokafka": bare_aiokafka,
    "faststream": bare_faststream,
    "+ middleware": with_middleware,
    "+ idempotency": with_idempotency,
}


async def _measure(send: Send, arrivals: Arrivals, pings: int, burst: int) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    latencies = []
    for i in range(pings + 20):
        key = uuid.uuid4().hex
        arrival = arrivals[key] = loop.create_future()
        started = time.perf_counter()
        await send(key)
        arrived = await asyncio.wait_for(arrival, 30)
        del arrivals[key]
        if i >= 20:  # the first round trips warm connections and caches
            latencies.append((arrived - started) * 1000)
    keys = [uuid.uuid4().hex for _ in range(burst)]
    burst_arrivals = [arrivals.setdefault(key, loop.create_future()) for key in keys]
    started = time.perf_counter()
    await asyncio.gather(*(send(key) for key in keys))
    await asyncio.wait_for(asyncio.gather(*burst_arrivals), 120)
    elapsed = time.perf_counter() - started
    return {"p50_ms": statistics.median(latencies), "p99_ms": _percentile(latencies, 99), "msgs_per_s": burst / elapsed}


async def _run_rung(rung: Rung, settings: Settings, pings: int, burst: int) -> dict[str, float]:
    topic = f"bench.bus.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        await admin.close()
    async with rung(settings, topic) as (send, arrivals):
        await asyncio.sleep(1)  # let the group settle before timing
        return await _measure(send, arrivals, pings, burst)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pings", type=int, default=300)
    parser.add_argument("--burst", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, list[dict[str, float]]] = {name: [] for name in RUNGS}
    async with isolated_stack() as stack:
        # Tansu holds a fetch that found nothing for its whole max wait, even when a record arrives meanwhile (Apache
        # Kafka answers at once): at the services' 50 ms every rung's latency would be mostly that wait.
        settings = stack.model_copy(update={"service_name": "bench-bus", "kafka_fetch_max_wait_ms": 5})
        configure_tracing(settings)  # as a service has it: spans with ids, sampled only when an exporter is set
        for _ in range(args.rounds):
            for name, rung in RUNGS.items():
                results[name].append(await _run_rung(rung, settings, args.pings, args.burst))

    def figures(name: str, key: str) -> list[float]:
        return [run[key] for run in results[name]]

    print(f"bus ladder: {args.pings} sequential pings and a burst of {args.burst} per rung, arrival after the offset")
    print(f"commit; medians of {args.rounds} rounds (min-max)")
    print(f"  {'':15} {'p50 ms':>17} {'p99 ms':>17} {'msgs/s':>19}")
    for name in RUNGS:
        p50, p99 = spread(figures(name, "p50_ms"), 2), spread(figures(name, "p99_ms"), 2)
        print(f"  {name:15} {p50:>17} {p99:>17} {spread(figures(name, 'msgs_per_s'), 0):>19}")
    ours, bare = "+ idempotency", "aiokafka"
    p50_ratio = statistics.median(figures(ours, "p50_ms")) / statistics.median(figures(bare, "p50_ms"))
    throughput = statistics.median(figures(ours, "msgs_per_s"))
    print(f"  ratio p50 + idempotency / aiokafka: {p50_ratio:.2f} (target ≤ 1.5)")
    print(f"  + idempotency throughput: {throughput:.0f} msgs/s (target ≥ 1500)")
    ratio = throughput / statistics.median(figures(bare, "msgs_per_s"))
    print(f"  ratio throughput + idempotency / aiokafka: {ratio:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
