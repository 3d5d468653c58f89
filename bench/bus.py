"""Bus benchmark: publish → handler round trip through the ModelOps runtime versus bare aiokafka, same run.

Ours: `Bus.publish` (CloudEvents envelope, tracing and metrics middleware, acks=all) → `IdempotentConsumer`
(decode, Postgres transaction recording the message id, handler, offset commit). Bare: an aiokafka producer
(acks=all) → an aiokafka consumer group loop that commits after each message. Both run on a fresh embedded
stack of the benchmark's own (tansu + PostgreSQL): a long-running stack's topic history slowed ours twofold.

    python bench/bus.py [--pings 300] [--burst 2000]

Prints p50/p99 latency of sequential ping-pong, messages/s of a pipelined burst, and the ratios.
Targets (issue #2): ours p50 ≤ 1.5 × bare p50 and ≤ 5 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from isolated_stack import isolated_stack
from modelops_contracts import Ping
from modelops_contracts.catalog import DIAGNOSTICS_PINGS
from modelops_shared.bus import Bus, IdempotentConsumer, MessageContext
from modelops_shared.db import apply_migrations, create_pool
from modelops_shared.settings import Settings
from modelops_shared.telemetry import configure_tracing

Arrival = Callable[[str], None]


def _percentile(samples: list[float], q: float) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1] if len(samples) > 1 else samples[0]


async def _measure(
    send: Callable[[str], Awaitable[None]], arrivals: dict[str, asyncio.Future[float]], pings: int, burst: int
) -> dict[str, float]:
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
    return {
        "p50_ms": statistics.median(latencies),
        "p99_ms": _percentile(latencies, 99),
        "msgs_per_s": burst / elapsed,
    }


def _arrive(arrivals: dict[str, asyncio.Future[float]], key: str) -> None:
    future = arrivals.get(key)
    if future is not None and not future.done():
        future.set_result(time.perf_counter())


async def bench_bare(settings: Settings, pings: int, burst: int) -> dict[str, float]:
    topic = f"bench.bare.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, 1, 1)])
    await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=topic,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=settings.kafka_session_timeout_ms // 3,
        fetch_max_wait_ms=50,
    )
    await producer.start()
    await consumer.start()
    arrivals: dict[str, asyncio.Future[float]] = {}

    async def consume() -> None:
        async for record in consumer:
            _arrive(arrivals, json.loads(record.value)["ping_id"])
            await consumer.commit()

    async def send(key: str) -> None:
        body = json.dumps({"ping_id": key, "sent_at": datetime.now(UTC).isoformat()}).encode()
        await producer.send_and_wait(topic, body, key=key.encode())

    task = asyncio.create_task(consume())
    try:
        await asyncio.sleep(1)  # let the group settle before timing
        return await _measure(send, arrivals, pings, burst)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await consumer.stop()
        await producer.stop()


async def bench_ours(settings: Settings, pings: int, burst: int) -> dict[str, float]:
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    pool = await create_pool(settings, schema)
    await apply_migrations(pool, schema)
    bus = Bus(settings)
    arrivals: dict[str, asyncio.Future[float]] = {}

    async def handle(message: Ping, ctx: MessageContext) -> None:
        _arrive(arrivals, message.ping_id)

    IdempotentConsumer(bus, pool, DIAGNOSTICS_PINGS, schema, handle).subscribe()  # type: ignore[arg-type]
    await bus.start()

    async def send(key: str) -> None:
        await bus.publish(Ping(ping_id=key, sent_at=datetime.now(UTC)))

    try:
        await asyncio.sleep(1)
        # The group starts at the earliest offset: drain the topic's history before timing.
        drain = uuid.uuid4().hex
        drained = arrivals[drain] = asyncio.get_running_loop().create_future()
        await send(drain)
        await asyncio.wait_for(drained, 300)
        return await _measure(send, arrivals, pings, burst)
    finally:
        await bus.stop()
        await pool.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await pool.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pings", type=int, default=300)
    parser.add_argument("--burst", type=int, default=2000)
    args = parser.parse_args()
    async with isolated_stack() as stack:
        settings = stack.model_copy(update={"service_name": "bench-bus"})
        configure_tracing(settings)  # as a service has it: spans with ids, sampled only when an exporter is set
        bare = await bench_bare(settings, args.pings, args.burst)
        ours = await bench_ours(settings, args.pings, args.burst)
    print(f"{'':8} {'p50 ms':>8} {'p99 ms':>8} {'msgs/s':>9}")
    for name, figures in (("bare", bare), ("modelops", ours)):
        print(f"{name:8} {figures['p50_ms']:8.2f} {figures['p99_ms']:8.2f} {figures['msgs_per_s']:9.0f}")
    p50_ratio = ours["p50_ms"] / bare["p50_ms"]
    print(f"ratio p50 ours/bare: {p50_ratio:.2f} (target ≤ 1.5); ours p50 {ours['p50_ms']:.2f} ms (target ≤ 5 ms)")
    print(f"ratio throughput ours/bare: {ours['msgs_per_s'] / bare['msgs_per_s']:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
