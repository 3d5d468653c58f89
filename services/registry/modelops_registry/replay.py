"""`replay`: rebuild every projection from the event log into a scratch schema and print the state digest, while the
live registry keeps serving. Reading and parsing the log overlaps with writing the projections."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
from modelops_shared.db import apply_migrations, create_pool

from .settings import RegistrySettings
from .store import eventlog
from .store.projections import MIGRATIONS, Projector, state_digest

REPLAY_CHUNK = 1000


async def replay(settings: RegistrySettings) -> int:
    """Replays into a scratch schema, so the live registry keeps serving while its state is re-derived."""
    schema = settings.registry_schema
    scratch = f"{schema}_replay_{uuid.uuid4().hex[:8]}"
    live = await create_pool(settings, schema)
    target = await create_pool(settings, scratch)
    try:
        await apply_migrations(target, scratch, (schema, MIGRATIONS))
        async with (
            live.acquire() as source,
            source.transaction(isolation="repeatable_read", readonly=True),
            target.acquire() as conn,
            conn.transaction(),
        ):
            count = await _project_log(source, Projector(conn))
            digest = await state_digest(conn)
        print(f"replayed {count} events")
        print(f"state digest: {digest}")
        return 0
    finally:
        await target.execute(f'DROP SCHEMA "{scratch}" CASCADE')
        await target.close()
        await live.close()


async def _project_log(source: asyncpg.Connection, projector: Projector) -> int:
    """Project every logged event, in order; returns how many. Each chunk is written (the database's work) while
    the next one is read and parsed (Python's), so the two overlap on separate cores."""
    count, writing = 0, None
    try:
        async for chunk in _parsed_chunks(source):
            if writing:
                await writing
            writing = asyncio.create_task(projector.add_all(chunk))
            count += len(chunk)
        if writing:
            await writing
    finally:
        if writing and not writing.done():  # reading failed: stop writing before the transaction rolls back
            writing.cancel()
            await asyncio.gather(writing, return_exceptions=True)
    return count


async def _parsed_chunks(source: asyncpg.Connection) -> AsyncIterator[list[eventlog.LoggedEvent]]:
    chunk: list[eventlog.LoggedEvent] = []
    async for seq, canonical, _ in eventlog.read(source):
        chunk.append(eventlog.LoggedEvent(seq, *eventlog.parse_event(canonical)))
        if len(chunk) == REPLAY_CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
