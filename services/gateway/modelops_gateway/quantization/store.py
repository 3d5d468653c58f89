"""The `quantization_jobs` table: a job's row, written with its command in the outbox, and what its events report.

Produces: quantization.commands.v1 (StartQuantization, CancelQuantization), through the outbox."""

from __future__ import annotations

import secrets
import time
from datetime import datetime
from typing import Any

import asyncpg
from modelops_contracts import TERMINAL_JOB_STATUSES, JobStatus, StartQuantization

_COLUMNS = (
    "id, status, submitted_by, model_id, adapter_id, spec, worker, stage, done, total, outputs, warnings,"
    " failure_reason, error_type, cancel_requested_at, cancel_requested_by, created_at, started_at, finished_at,"
    " updated_at"
)
_JSON_COLUMNS = ("spec", "outputs", "warnings")


def new_job_id() -> str:
    """`qjob-`, then the time in ms and randomness, in hex: ids sort by creation."""
    return f"qjob-{time.time_ns() // 1_000_000:011x}{secrets.token_hex(7)}"


async def insert_job(conn: asyncpg.Connection, command: StartQuantization, warnings: list[str]) -> dict[str, Any]:
    row = await conn.fetchrow(
        f"""INSERT INTO quantization_jobs (id, status, submitted_by, model_id, adapter_id, spec, total, warnings)
            VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8::jsonb) RETURNING {_COLUMNS}""",
        command.job_id,
        JobStatus.QUEUED,
        command.submitted_by,
        command.model,
        command.adapter,
        command.model_dump(mode="json"),
        len(command.formats),
        warnings,
    )
    return dict(row)


async def get_job(db: asyncpg.Connection | asyncpg.Pool, job_id: str, *, lock: bool = False) -> dict[str, Any] | None:
    row = await db.fetchrow(
        f"SELECT {_COLUMNS} FROM quantization_jobs WHERE id = $1{' FOR UPDATE' if lock else ''}", job_id
    )
    return dict(row) if row else None


async def update_job(conn: asyncpg.Connection, job_id: str, changes: dict[str, Any]) -> bool:
    """Apply an event's changes to a job that has not ended; False for a job that ended, or another gateway's."""
    names = list(changes)
    values = [changes[name] for name in names]
    assignments = ", ".join(
        f"{name} = ${i + 2}{'::jsonb' if name in _JSON_COLUMNS else ''}" for i, name in enumerate(names)
    )
    updated = await conn.fetchval(
        f"UPDATE quantization_jobs SET {assignments}, updated_at = now()"
        f" WHERE id = $1 AND NOT status = ANY(${len(names) + 2}::text[]) RETURNING true",
        job_id,
        *values,
        sorted(TERMINAL_JOB_STATUSES),
    )
    return bool(updated)


async def request_cancel(conn: asyncpg.Connection, job_id: str, requested_by: str, at: datetime) -> None:
    await conn.execute(
        "UPDATE quantization_jobs SET cancel_requested_at = $2, cancel_requested_by = $3, updated_at = now()"
        " WHERE id = $1",
        job_id,
        at,
        requested_by,
    )
