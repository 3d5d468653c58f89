"""Transactional outbox: write a message in the same transaction as the state change it announces;
a relay publishes and deletes it. No "commit, then publish" gap, and no publish without the commit.

A staged message carries the `traceparent` of the span that staged it, so its consumer continues that trace."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence

import asyncpg
from modelops_contracts import Envelope, KafkaRecord, Message, encode, topic_of

from ..telemetry import MESSAGES_RELAYED, current_trace_headers
from .publisher import Bus

log = logging.getLogger(__name__)

_CHANNEL_SQL = "'outbox_' || current_schema()"
# One relay per schema publishes at a time, so messages leave in commit order per key, whatever the replica count.
_RELAY_LOCK_SQL = "SELECT pg_try_advisory_xact_lock(hashtext('outbox_relay:' || current_schema()))"


async def enqueue(
    conn: asyncpg.Connection,
    bus: Bus,
    message: Message,
    *,
    correlation_id: str | None = None,
    causation: Envelope | None = None,
) -> Envelope:
    """Stage `message` for publishing; it leaves only if the caller's transaction commits."""
    envelope = bus.envelope_for(message, correlation_id=correlation_id, causation=causation)
    await enqueue_many(conn, [(envelope, message)])
    return envelope


async def enqueue_many(
    conn: asyncpg.Connection,
    messages: Sequence[tuple[Envelope, Message]],
    traces: Mapping[str, dict[str, str]] | None = None,
) -> None:
    """Stage messages already put in envelopes (an event log that recorded them keeps the same ids). A message
    carries the current span's trace, or the one `traces` names for its envelope id (a batch's messages may answer
    different traces)."""
    if not messages:
        return
    current = current_trace_headers()
    rows = []
    for envelope, message in messages:
        record = encode(message, envelope, trace_headers=(traces or {}).get(envelope.id, current))
        rows.append((topic_of(message).name, record.key, record.value, record.headers))
    await conn.executemany("INSERT INTO outbox (topic, key, value, headers) VALUES ($1, $2, $3, $4)", rows)
    # NOTIFY is delivered at commit, so the relay wakes exactly when there is something to send.
    await conn.execute(f"SELECT pg_notify({_CHANNEL_SQL}, '')")


class OutboxRelay:
    """Publishes staged messages in id order; a row is deleted only after the broker acknowledged it."""

    def __init__(self, pool: asyncpg.Pool, bus: Bus, *, batch_size: int = 200, poll_interval: float = 1.0) -> None:
        self.pool = pool
        self.bus = bus
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self._wake = asyncio.Event()

    async def relay_once(self) -> int:
        """Publish one batch; returns how many messages left. 0 when empty or another replica holds the turn."""
        async with self.pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval(_RELAY_LOCK_SQL):
                return 0
            rows = await conn.fetch(
                "SELECT id, topic, key, value, headers FROM outbox ORDER BY id LIMIT $1", self.batch_size
            )
            await self.bus.send_records(
                [
                    (
                        row["topic"],
                        KafkaRecord(key=bytes(row["key"]), value=bytes(row["value"]), headers=row["headers"]),
                    )
                    for row in rows
                ]
            )
            for row in rows:
                MESSAGES_RELAYED.labels(row["topic"]).inc()
            if rows:
                await conn.execute("DELETE FROM outbox WHERE id = any($1::bigint[])", [row["id"] for row in rows])
            return len(rows)

    async def run(self) -> None:
        """Relay until cancelled: on every commit notification, and every `poll_interval` as a safety net."""
        async with self.pool.acquire() as listener:
            channel = await listener.fetchval(f"SELECT {_CHANNEL_SQL}")
            await listener.add_listener(channel, self._on_notify)
            try:
                while True:
                    try:
                        while await self.relay_once() == self.batch_size:
                            pass
                    except Exception:
                        log.exception("outbox relay failed; retrying")
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self.poll_interval)
                    self._wake.clear()
            finally:
                await listener.remove_listener(channel, self._on_notify)

    def _on_notify(self, *_: object) -> None:
        self._wake.set()
