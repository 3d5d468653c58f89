"""The `files` table: OpenAI's view of an uploaded fine-tuning file, whose content is the dataset of the same name."""

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
