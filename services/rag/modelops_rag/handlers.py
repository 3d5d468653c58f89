"""What each indexing event does to its job, and a completed, registered index to its collection: the rag service's
projections of rag.events.v1 and registry.artifacts.v1, each run by an IdempotentConsumer in the transaction that
records the message as processed.

Consumes: rag.events.v1 (consumer group: `<rag schema>-events`), registry.artifacts.v1 (`<rag schema>-registry`)."""

from __future__ import annotations

import logging
from typing import Any

from modelops_contracts import (
    ArtifactKind,
    ArtifactRegistered,
    IndexingCancelled,
    IndexingCompleted,
    IndexingFailed,
    IndexingProgressed,
    IndexingStarted,
    Message,
)
from modelops_shared.bus import MessageContext

from . import store

log = logging.getLogger(__name__)


def changes_of(message: Message) -> dict[str, Any]:
    """The job columns an event sets; nothing for another message."""
    match message:
        case IndexingStarted():
            return {"status": "running", "total": message.to_embed}
        case IndexingProgressed():
            return {"status": "running", "done": message.done, "total": message.total, "chunks": message.chunks}
        case IndexingCompleted():
            outcome = {"chunks": message.chunks, "embedded_chunks": message.embedded_chunks, "skipped": message.skipped}
            outcome["duration_seconds"] = message.duration_seconds
            return {"status": "completed", "index_id": message.index_id, "outcome": outcome}
        case IndexingFailed():
            return {"status": "failed", "outcome": {"reason": message.reason, "error_type": message.error_type}}
        case IndexingCancelled():
            return {"status": "cancelled", "outcome": {"reason": message.reason}}
    return {}


async def project(message: Message, context: MessageContext) -> None:
    """Record the event on its job; a completed job's index is served once the registry has registered it too."""
    changes = changes_of(message)
    job_id = getattr(message, "job_id", None)
    if not changes or not job_id:
        return
    if isinstance(message, IndexingCompleted):
        await store.lock_index(context.conn, message.index_id)
    if await store.update_job(context.conn, job_id, changes) is None:
        log.debug("ignoring %s of job %s: unknown, or already ended", message.type, job_id)
    elif isinstance(message, IndexingCompleted):
        await store.make_current(context.conn, message.index_id)


async def registered(message: Message, context: MessageContext) -> None:
    """A rag_index the registry signed and registered may now be served (if its job completed)."""
    if isinstance(message, ArtifactRegistered) and message.kind == ArtifactKind.RAG_INDEX:
        await store.lock_index(context.conn, message.artifact_id)
        await store.record_registered(context.conn, message.artifact_id)
        await store.make_current(context.conn, message.artifact_id)
