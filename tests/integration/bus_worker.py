"""A consumer process for the bus tests: records each Ping it handles, with envelope and trace context.

    python bus_worker.py SCHEMA GROUP [normal|crash-after-commit]

In crash-after-commit mode it handles one message through the real consumer path, then dies before
FastStream can commit the offset — the window a real crash hits between a database commit and a Kafka commit.
"""

import asyncio
import os
import sys

from faststream import AckPolicy
from faststream.kafka import KafkaMessage
from modelops_contracts import Ping
from modelops_contracts.catalog import DIAGNOSTICS_PINGS
from modelops_shared.bus import Bus, IdempotentConsumer, MessageContext, PermanentError
from modelops_shared.db import apply_migrations, create_pool
from modelops_shared.settings import Settings
from modelops_shared.telemetry import configure_logging, configure_tracing
from opentelemetry import trace

EFFECTS_TABLE = """
CREATE TABLE IF NOT EXISTS effects (
    ping_id text NOT NULL, message_id text NOT NULL, type text, source text, subject text, time timestamptz,
    correlation_id text, causation_id text, trace_id text, parent_span_id text, worker_pid integer
)"""


# How often each "outage" ping has met the outage: more tries than one delivery's retries, so only a redelivery ends it.
OUTAGE_TRIES = 6
outages: dict[str, int] = {}


async def handle(message: Ping, ctx: MessageContext) -> None:
    if message.payload == "outage" and outages.get(message.ping_id, 0) < OUTAGE_TRIES:
        outages[message.ping_id] = outages.get(message.ping_id, 0) + 1
        raise ConnectionError("the database went away (a stand-in outage)")
    if message.payload == "always-fails":
        raise RuntimeError("this handler cannot handle always-fails")
    if message.payload == "permanent":
        raise PermanentError("refused without retrying")
    if message.payload == "needs-fix" and not await ctx.conn.fetchval("SELECT to_regclass('fixes') IS NOT NULL"):
        raise PermanentError("a bug: fixed once the table `fixes` exists")
    span = trace.get_current_span()
    parent = getattr(span, "parent", None)
    env = ctx.envelope
    await ctx.conn.execute(
        "INSERT INTO effects VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        message.ping_id,
        env.id,
        env.type,
        env.source,
        env.subject,
        env.time,
        env.correlation_id,
        env.causation_id,
        format(span.get_span_context().trace_id, "032x"),
        format(parent.span_id, "016x") if parent else None,
        os.getpid(),
    )


async def main(schema: str, group: str, mode: str) -> None:
    settings = Settings(service_name="bus-worker", consumer_retry_backoff_s=0.05, trace_sample_ratio=1.0)
    configure_logging(settings)
    configure_tracing(settings)
    pool = await create_pool(settings, schema)
    await apply_migrations(pool, schema)
    await pool.execute(EFFECTS_TABLE)
    bus = Bus(settings)
    consumer = IdempotentConsumer(bus, pool, DIAGNOSTICS_PINGS, group, handle)  # type: ignore[arg-type]
    if mode == "crash-after-commit":

        async def process_then_die(msg: KafkaMessage) -> None:
            await consumer.process(msg)
            os._exit(9)

        bus.broker.subscriber(
            DIAGNOSTICS_PINGS.name,
            batch=True,
            max_records=1,
            group_id=group,
            auto_offset_reset="earliest",
            ack_policy=AckPolicy.NACK_ON_ERROR,
            session_timeout_ms=6000,
        )(process_then_die)
    else:
        consumer.subscribe()
    await bus.start()
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:3], sys.argv[3] if len(sys.argv) > 3 else "normal"))
