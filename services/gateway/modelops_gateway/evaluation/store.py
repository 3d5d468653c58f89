"""The `evaluation_jobs` table: a job's row, written with its command in the outbox, and what its events report.

Produces: evaluation.commands.v1 (StartEvaluation, CancelEvaluation), through the outbox."""

from __future__ import annotations

import secrets
import time
from datetime import datetime
from typing import Any

import asyncpg
from modelops_contracts import TERMINAL_JOB_STATUSES, JobStatus, StartEvaluation

_COLUMNS = (
    "id, status, submitted_by, model_id, adapter_id, deployment, suite, suite_version, spec, worker, done, total,"
    " report_id, metrics, failure_reason, error_type, cancel_requested_at, cancel_requested_by, created_at,"
    " started_at, finished_at, updated_at"
)
_JSON_COLUMNS = ("spec", "metrics")


def new_job_id() -> str:
    """`ejob-`, then the time in ms and randomness, in hex: ids sort by creation."""
    return f"ejob-{time.time_ns() // 1_000_000:011x}{secrets.token_hex(7)}"


async def insert_job(conn: asyncpg.Connection, command: StartEvaluation) -> dict[str, Any]:
    row = await conn.fetchrow(
        f"""INSERT INTO evaluation_jobs
              (id, status, submitted_by, model_id, adapter_id, deployment, suite, suite_version, spec)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb) RETURNING {_COLUMNS}""",
        command.job_id,
        JobStatus.QUEUED,
        command.submitted_by,
        command.model,
        command.adapter,
        command.deployment,
        command.suite,
        command.suite_version,
        command.model_dump(mode="json"),
    )
    return dict(row)


async def get_job(db: asyncpg.Connection | asyncpg.Pool, job_id: str, *, lock: bool = False) -> dict[str, Any] | None:
    row = await db.fetchrow(
        f"SELECT {_COLUMNS} FROM evaluation_jobs WHERE id = $1{' FOR UPDATE' if lock else ''}", job_id
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
        f"UPDATE evaluation_jobs SET {assignments}, updated_at = now()"
        f" WHERE id = $1 AND NOT status = ANY(${len(names) + 2}::text[]) RETURNING true",
        job_id,
        *values,
        sorted(TERMINAL_JOB_STATUSES),
    )
    return bool(updated)


async def request_cancel(conn: asyncpg.Connection, job_id: str, requested_by: str, at: datetime) -> None:
    await conn.execute(
        "UPDATE evaluation_jobs SET cancel_requested_at = $2, cancel_requested_by = $3, updated_at = now()"
        " WHERE id = $1",
        job_id,
        at,
        requested_by,
    )
