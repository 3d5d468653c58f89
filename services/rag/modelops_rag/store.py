"""The rag service's tables: collections, document versions, and index jobs as their events report them."""

from __future__ import annotations

import secrets
import time
from typing import Any, TypeAlias

import asyncpg

Conn: TypeAlias = asyncpg.Connection | asyncpg.Pool

_COLLECTION = """SELECT c.id, c.name, c.owner, c.description, c.embedding_model, c.index_id, c.chunks, c.created_at,
       (SELECT count(DISTINCT d.name) FROM documents d WHERE d.collection_id = c.id) AS documents
  FROM collections c"""
_JOB = """SELECT j.id, c.name AS collection, j.status, j.requested_by, j.documents, j.done, j.total, j.chunks,
       j.index_id, j.outcome, j.created_at, j.updated_at
  FROM index_jobs j JOIN collections c ON c.id = j.collection_id"""
_DOCUMENT = "name, version, sha256, size, content_type, uploaded_by, uploaded_at"
ACTIVE = ("queued", "running")


def new_id(prefix: str) -> str:
    """`<prefix>-`, then the time in ms and randomness, in hex: ids sort by creation."""
    return f"{prefix}-{time.time_ns() // 1_000_000:011x}{secrets.token_hex(7)}"


async def collection(conn: Conn, name: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(f"{_COLLECTION} WHERE c.name = $1 AND c.deleted_at IS NULL", name)
    return dict(row) if row else None


async def collection_by_request(conn: Conn, request_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(f"{_COLLECTION} WHERE c.request_id = $1", request_id)
    return dict(row) if row else None


async def collections(conn: Conn) -> list[dict[str, Any]]:
    return [dict(row) for row in await conn.fetch(f"{_COLLECTION} WHERE c.deleted_at IS NULL ORDER BY c.name")]


async def insert_collection(
    conn: Conn, *, name: str, owner: str, description: str, embedding_model: str, request_id: str | None
) -> bool:
    """False when a live collection already has the name."""
    inserted = await conn.fetchval(
        """INSERT INTO collections (id, name, owner, description, embedding_model, request_id)
           VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING id""",
        new_id("col"),
        name,
        owner,
        description,
        embedding_model,
        request_id,
    )
    return inserted is not None


async def delete_collection(conn: Conn, collection_id: str) -> None:
    await conn.execute("UPDATE collections SET deleted_at = now() WHERE id = $1", collection_id)


async def latest_documents(conn: Conn, collection_id: str) -> list[dict[str, Any]]:
    """The newest version of every document, by name."""
    rows = await conn.fetch(
        f"""SELECT DISTINCT ON (name) {_DOCUMENT}, uri FROM documents WHERE collection_id = $1
            ORDER BY name, version DESC""",
        collection_id,
    )
    return [dict(row) for row in rows]


async def document_by_request(conn: Conn, request_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(f"SELECT {_DOCUMENT} FROM documents WHERE request_id = $1", request_id)
    return dict(row) if row else None


async def add_document(conn: asyncpg.Connection, collection_id: str, upload: dict[str, Any]) -> dict[str, Any]:
    """A new version of the named document; the newest one again (`unchanged`) when its bytes are the same."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1 || '/' || $2))", collection_id, upload["name"])
    latest = await conn.fetchrow(
        f"SELECT {_DOCUMENT} FROM documents WHERE collection_id = $1 AND name = $2 ORDER BY version DESC LIMIT 1",
        collection_id,
        upload["name"],
    )
    if latest is not None and latest["sha256"] == upload["sha256"]:
        return {**dict(latest), "unchanged": True}
    row = await conn.fetchrow(
        f"""INSERT INTO documents
              (collection_id, name, version, uri, sha256, size, content_type, uploaded_by, request_id)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {_DOCUMENT}""",
        collection_id,
        upload["name"],
        (latest["version"] if latest else 0) + 1,
        upload["uri"],
        upload["sha256"],
        upload["size"],
        upload["content_type"],
        upload["uploaded_by"],
        upload["request_id"],
    )
    return {**dict(row), "unchanged": False}


async def document_versions(conn: Conn, collection_id: str, *, with_uri: bool = False) -> list[dict[str, Any]]:
    columns = f"{_DOCUMENT}, uri" if with_uri else _DOCUMENT
    rows = await conn.fetch(
        f"SELECT {columns} FROM documents WHERE collection_id = $1 ORDER BY name, version DESC", collection_id
    )
    return [dict(row) for row in rows]


async def insert_job(
    conn: Conn, job_id: str, collection_id: str, requested_by: str, documents: int, request_id: str | None
) -> None:
    await conn.execute(
        """INSERT INTO index_jobs (id, collection_id, requested_by, status, documents, request_id)
           VALUES ($1, $2, $3, 'queued', $4, $5)""",
        job_id,
        collection_id,
        requested_by,
        documents,
        request_id,
    )


async def job(conn: Conn, job_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(f"{_JOB} WHERE j.id = $1", job_id)
    return dict(row) if row else None


async def job_by_request(conn: Conn, request_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(f"{_JOB} WHERE j.request_id = $1", request_id)
    return dict(row) if row else None


async def active_job(conn: Conn, collection_id: str) -> str | None:
    found: str | None = await conn.fetchval(
        "SELECT id FROM index_jobs WHERE collection_id = $1 AND status = ANY($2::text[]) LIMIT 1",
        collection_id,
        list(ACTIVE),
    )
    return found


async def update_job(conn: asyncpg.Connection, job_id: str, changes: dict[str, Any]) -> str | None:
    """Apply an event's changes to a job that has not ended; its collection's id, or None when nothing changed."""
    columns = list(changes)
    assignments = ", ".join(f"{column} = ${n}" for n, column in enumerate(columns, 2))
    collection_id: str | None = await conn.fetchval(
        f"""UPDATE index_jobs SET {assignments}, updated_at = now()
            WHERE id = $1 AND status = ANY($%d::text[]) RETURNING collection_id"""
        % (len(columns) + 2),
        job_id,
        *changes.values(),
        list(ACTIVE),
    )
    return collection_id


async def index_of(conn: Conn, collection_id: str) -> str | None:
    index_id: str | None = await conn.fetchval("SELECT index_id FROM collections WHERE id = $1", collection_id)
    return index_id


async def lock_index(conn: asyncpg.Connection, index_id: str) -> None:
    """Serialise the two halves of making an index current — its job completed, the registry registered it — until
    this transaction ends. They commit in two consumers' transactions; without the lock each could run `make_current`
    before the other committed, miss the other half, and the index would never be served."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", index_id)


async def record_registered(conn: asyncpg.Connection, index_id: str) -> None:
    await conn.execute("INSERT INTO registered_indexes (index_id) VALUES ($1) ON CONFLICT DO NOTHING", index_id)


async def make_current(conn: asyncpg.Connection, index_id: str) -> None:
    """Serve the index its collection's searches from now on, once its job completed and the registry registered it;
    never an index older than the one served."""
    await conn.execute(
        """UPDATE collections c SET index_id = j.index_id, chunks = (j.outcome ->> 'chunks')::integer
             FROM index_jobs j JOIN registered_indexes r ON r.index_id = j.index_id
            WHERE j.index_id = $1 AND j.status = 'completed' AND c.id = j.collection_id AND c.deleted_at IS NULL
              AND (c.index_id IS NULL
                   OR j.created_at >= (SELECT created_at FROM index_jobs WHERE index_id = c.index_id))""",
        index_id,
    )
