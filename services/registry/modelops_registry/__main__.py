"""`python -m modelops_registry [serve | verify-log | replay | rotate-key]`.

serve       HTTP and the tracked consumer in one process (the default)
verify-log  walk the hash chain; exit 1 on any edited, deleted, inserted or reordered row
replay      rebuild every projection from the log into empty tables and print `state digest: <hex>`
rotate-key  make a new active signing key; old public keys stay for verification
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from collections.abc import AsyncIterator

import asyncpg
from modelops_shared.db import apply_migrations, create_pool
from modelops_shared.service import serve
from modelops_shared.signing import KeyRing

from . import eventlog
from .app import MIGRATIONS, create_app
from .projections import Projector, state_digest
from .settings import RegistrySettings

REPLAY_CHUNK = 1000


async def verify_log(settings: RegistrySettings) -> int:
    pool = await create_pool(settings, settings.registry_schema)
    try:
        async with pool.acquire() as conn:
            problems = await eventlog.verify(conn)
            length = await conn.fetchval("SELECT seq FROM event_log_head")
    finally:
        await pool.close()
    for problem in problems:
        print(f"TAMPERED: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(f"event log intact: {length} events")
    return 0


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m modelops_registry", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve")
    commands.add_parser("verify-log")
    commands.add_parser("replay")
    rotate = commands.add_parser("rotate-key")
    rotate.add_argument("--algorithm", choices=["ed25519", "ecdsa-p256"])
    args = parser.parse_args(argv)
    settings = RegistrySettings()
    if args.command == "verify-log":
        return asyncio.run(verify_log(settings))
    if args.command == "replay":
        return asyncio.run(replay(settings))
    if args.command == "rotate-key":
        keys = KeyRing.load_or_create(settings.keys_dir, settings.registry_signing_algorithm)
        new = keys.rotate(args.algorithm or settings.registry_signing_algorithm)
        print(f"active key: {new.key_id} ({new.algorithm}); {len(keys.public_keys())} public keys kept")
        return 0
    serve(create_app(settings), settings)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
