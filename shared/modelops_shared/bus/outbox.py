"""Transactional outbox: write a message in the same transaction as the state change it announces;
a relay publishes and deletes it. No "commit, then publish" gap, and no publish without the commit."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg
from modelops_contracts import Envelope, Message, encode, topic_of
from opentelemetry import context, propagate

from ..telemetry import current_trace_headers
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
    envelope: Envelope | None = None,
) -> Envelope:
    """Stage `message` for publishing; it leaves only if the caller's transaction commits.

    Pass `envelope` when the message was already recorded under one (an event log keeps the published id).
    """
    envelope = envelope or bus.envelope_for(message, correlation_id=correlation_id, causation=causation)
    record = encode(message, envelope, trace_headers=current_trace_headers())
    await conn.execute(
        "INSERT INTO outbox (topic, key, value, headers) VALUES ($1, $2, $3, $4)",
        topic_of(message).name,
        record.key,
        record.value,
        record.headers,
    )
    # NOTIFY is delivered at commit, so the relay wakes exactly when there is something to send.
    await conn.execute(f"SELECT pg_notify({_CHANNEL_SQL}, '')")
    return envelope


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
            for row in rows:
                await self._publish(row)
            if rows:
                await conn.execute("DELETE FROM outbox WHERE id = any($1::bigint[])", [row["id"] for row in rows])
            return len(rows)

    async def _publish(self, row: asyncpg.Record) -> None:
        headers: dict[str, str] = row["headers"]
        # Continue the trace of the request that staged the message, not start a new one in the relay.
        token = context.attach(propagate.extract(headers))
        try:
            await self.bus.broker.publish(row["value"], topic=row["topic"], key=row["key"], headers=dict(headers))
        finally:
            context.detach(token)

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
