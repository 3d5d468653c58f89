"""The datasets feature's tables: `dataset_versions` (each version announced, once), `dataset_owners` (who may add
versions; a dataset from before it gets its row when next written, from its version 0's commit: uploads.py) and
`files` (OpenAI's view of an uploaded fine-tuning file, whose content is the dataset of the same name)."""

from __future__ import annotations

from typing import Literal

import asyncpg

_COLUMNS = "id, filename, bytes, purpose, created_at"
# Newest first unless asked otherwise; `after` is the id of the previous page's last file (an unknown one ends the
# list). Two fixed statements, so the order never reaches the SQL as text.
_LIST_SQL = {
    order: f"SELECT {_COLUMNS} FROM files WHERE ($1::text IS NULL OR purpose = $1) AND ($2::text IS NULL OR"
    f" (created_at, id) {op} (SELECT created_at, id FROM files WHERE id = $2))"
    f" ORDER BY created_at {order}, id {order} LIMIT $3"
    for order, op in (("desc", "<"), ("asc", ">"))
}


async def insert_file(
    conn: asyncpg.Connection, file_id: str, *, filename: str, size: int, purpose: str, created_by: str
) -> asyncpg.Record:
    return await conn.fetchrow(
        "INSERT INTO files (id, filename, bytes, purpose, created_by) VALUES ($1, $2, $3, $4, $5)"
        f" RETURNING {_COLUMNS}",
        file_id,
        filename,
        size,
        purpose,
        created_by,
    )


async def list_files(
    pool: asyncpg.Pool, *, purpose: str | None, after: str | None, limit: int, order: Literal["asc", "desc"]
) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await pool.fetch(_LIST_SQL[order], purpose, after, limit)
    return rows


async def get_file(pool: asyncpg.Pool, file_id: str) -> asyncpg.Record | None:
    return await pool.fetchrow(f"SELECT {_COLUMNS} FROM files WHERE id = $1", file_id)


async def owner(db: asyncpg.Pool | asyncpg.Connection, name: str) -> str | None:
    """Who owns dataset `name`; None when no owner is recorded."""
    found: str | None = await db.fetchval("SELECT owner FROM dataset_owners WHERE name = $1", name)
    return found


async def claim_owner(pool: asyncpg.Pool, name: str, claimant: str) -> str:
    """The owner of dataset `name`: `claimant` unless one was recorded first (two first uploads of one name race
    here, and one of them owns it)."""
    await pool.execute(
        "INSERT INTO dataset_owners (name, owner) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING", name, claimant
    )
    return await owner(pool, name) or claimant


async def record_announcement(conn: asyncpg.Connection, name: str, version: int, dataset_id: str) -> bool:
    """Record that version `version` of `name` is announced; False when it already was (by anyone)."""
    recorded: bool | None = await conn.fetchval(
        "INSERT INTO dataset_versions (name, version, dataset_id) VALUES ($1, $2, $3)"
        " ON CONFLICT (name, version) DO NOTHING RETURNING true",
        name,
        version,
        dataset_id,
    )
    return bool(recorded)


async def announced_counts(pool: asyncpg.Pool) -> dict[str, tuple[int, int]]:
    """For each dataset, how many of its versions are announced and the newest one."""
    rows = await pool.fetch("SELECT name, count(*), max(version) FROM dataset_versions GROUP BY name")
    return {row["name"]: (row["count"], row["max"]) for row in rows}


async def announced_versions(pool: asyncpg.Pool, name: str) -> set[int]:
    versions: list[int] = await pool.fetchval(
        "SELECT coalesce(array_agg(version), '{}') FROM dataset_versions WHERE name = $1", name
    )
    return set(versions)


async def latest_announced(db: asyncpg.Pool | asyncpg.Connection, name: str) -> int | None:
    """The newest version of `name` this gateway announced; None when it announced none."""
    latest: int | None = await db.fetchval("SELECT max(version) FROM dataset_versions WHERE name = $1", name)
    return latest
