"""The `model_imports` table: one row per imported file content, staged with its ImportGguf command in the outbox,
and its outcome as the trainer reported it.

Produces: models.commands.v1 (ImportGguf), through the outbox."""

from __future__ import annotations

import asyncpg
from modelops_contracts import ImportGguf
from modelops_shared.bus import Bus, enqueue

_COLUMNS = (
    "id, status, name, source, filename, sha256, size, gguf_artifact_id, base_model_artifact_id, reason,"
    " requested_by, created_at, updated_at"
)


async def stage_import(conn: asyncpg.Connection, bus: Bus, command: ImportGguf) -> bool:
    """Record the import and enqueue its command; False (nothing enqueued) when this file was imported before."""
    inserted = await conn.fetchval(
        """INSERT INTO model_imports (id, name, source, filename, sha256, size, gguf_artifact_id,
               base_model_artifact_id, requested_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
           ON CONFLICT (id) DO NOTHING RETURNING true""",
        command.import_id,
        command.name,
        command.source,
        command.file.path,
        command.file.sha256,
        command.file.size,
        command.gguf_artifact_id,
        command.base_model_artifact_id,
        command.requested_by,
    )
    if inserted:
        await enqueue(conn, bus, command, correlation_id=command.import_id)
    return bool(inserted)


async def get_import(conn: asyncpg.Connection | asyncpg.Pool, import_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {_COLUMNS} FROM model_imports WHERE id = $1", import_id)


async def record_outcome(
    conn: asyncpg.Connection, import_id: str, *, status: str, name: str | None = None, reason: str | None = None
) -> None:
    await conn.execute(
        "UPDATE model_imports SET status = $2, name = coalesce($3, name), reason = $4, updated_at = now()"
        " WHERE id = $1",
        import_id,
        status,
        name,
        reason,
    )
