"""The rag service's projections under concurrency: an index is served once its job completed and the registry
registered it, two halves that commit in two consumers' transactions at the same time."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from modelops_contracts import ArtifactKind, ArtifactRegistered, IndexingCompleted
from modelops_rag import handlers, store
from modelops_rag.app import MIGRATIONS
from modelops_rag.settings import RagSettings
from modelops_shared.bus import MessageContext
from modelops_shared.db import apply_migrations, create_pool


def _context(conn: Any) -> MessageContext:
    return MessageContext(envelope=None, conn=conn, bus=None)  # type: ignore[arg-type]  # the handlers use conn only


async def test_an_index_completed_and_registered_concurrently_is_served(rag_settings: RagSettings) -> None:
    """Whichever half commits last must see the other: the registration waits for the completion's transaction (the
    index lock), so its `make_current` finds the job completed. Without the lock neither sees the other."""
    name, job_id, index_id = f"race-{uuid.uuid4().hex[:8]}", f"idx-job-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    completed = IndexingCompleted.model_construct(
        job_id=job_id, index_id=index_id, chunks=3, embedded_chunks=3, skipped={}, duration_seconds=1.0
    )
    registration = ArtifactRegistered.model_construct(artifact_id=index_id, kind=ArtifactKind.RAG_INDEX)
    schema = rag_settings.rag_schema
    pool = await create_pool(rag_settings, schema)
    try:
        await apply_migrations(pool, schema, (schema, MIGRATIONS))  # the tables only: no rag service runs here
        async with pool.acquire() as conn:
            await store.insert_collection(
                conn, name=name, owner="alice", description="", embedding_model="minilm", request_id=None
            )
            collection = await store.collection(conn, name)
            assert collection is not None
            await store.insert_job(conn, job_id, collection["id"], "alice", 1, None)

        async with pool.acquire() as events, pool.acquire() as registry:
            completing = events.transaction()
            await completing.start()
            await handlers.project(completed, _context(events))
            async with registry.transaction():
                registering = asyncio.create_task(handlers.registered(registration, _context(registry)))
                await asyncio.sleep(0.5)
                assert not registering.done()  # held until the completion commits
                await completing.commit()
                await registering
        async with pool.acquire() as conn:
            served = await store.collection(conn, name)
    finally:
        await pool.close()
    assert served is not None
    assert served["index_id"] == index_id
