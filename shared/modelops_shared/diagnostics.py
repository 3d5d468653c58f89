"""Bus smoke check against a running stack: pings go out directly and through the outbox, come back through
an idempotent consumer, and the round trips are printed. `make demo` runs it until the platform's main
flow replaces it.

    python -m modelops_shared.diagnostics [--pings 10]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime

from modelops_contracts import Message, Ping
from modelops_contracts.catalog import DIAGNOSTICS_PINGS

from .bus import MessageContext, enqueue
from .service import Runtime, Subscription
from .settings import Settings

TIMEOUT_S = 60.0


async def smoke(settings: Settings, pings: int) -> int:
    loop = asyncio.get_running_loop()
    arrivals: dict[str, asyncio.Future[float]] = {}

    async def on_ping(message: Message, ctx: MessageContext) -> None:
        assert isinstance(message, Ping)
        future = arrivals.get(message.ping_id)
        if future is not None and not future.done():
            future.set_result(time.perf_counter())

    run = uuid.uuid4().hex[:8]
    subscription = Subscription(DIAGNOSTICS_PINGS, f"smoke-{run}", on_ping)
    async with Runtime.started(settings, schema="diagnostics", subscriptions=(subscription,)) as runtime:
        # A new group starts at the earliest offset: one ping through first drains earlier runs' pings.
        routes = [("warm-up", 1), ("direct", pings), ("outbox", pings)]
        results: dict[str, list[float]] = {}
        for route, count in routes:
            latencies = []
            for i in range(count):
                ping = Ping(ping_id=f"smoke-{run}-{route}-{i}", sent_at=datetime.now(UTC), payload=route)
                arrival = arrivals[ping.ping_id] = loop.create_future()
                sent = time.perf_counter()
                if route == "outbox":
                    async with runtime.pool.acquire() as conn, conn.transaction():
                        await enqueue(conn, runtime.bus, ping)
                else:
                    await runtime.bus.publish(ping)
                try:
                    latencies.append((await asyncio.wait_for(arrival, TIMEOUT_S) - sent) * 1000)
                except TimeoutError:
                    print(f"FAIL: {ping.ping_id} did not come back within {TIMEOUT_S:.0f} s", file=sys.stderr)
                    return 1
            results[route] = latencies
    print(f"bus smoke: {DIAGNOSTICS_PINGS.name} via {settings.kafka_bootstrap}, consumer group smoke-{run}")
    for route in ("direct", "outbox"):
        print(f"  {route:7} {len(results[route]):3} pings  round trip p50 {statistics.median(results[route]):7.2f} ms")
    print("OK: every ping was published, consumed once and recorded in PostgreSQL")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pings", type=int, default=10)
    args = parser.parse_args()
    # The summary is the output; INFO logs of group joins would bury it.
    return asyncio.run(smoke(Settings(service_name="diagnostics", log_level="WARNING"), args.pings))


if __name__ == "__main__":
    raise SystemExit(main())
