"""SQL: a job service's ledger in its own schema's `jobs` table (each service's migrations create it): starts counted,
outcomes written in one transaction with the events that announce them (outbox)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import asyncpg
from modelops_contracts import Envelope, JobStatus, Message

from ..bus import Bus, enqueue

# The table every job service creates (its own migration, so that each owns its schema):
#   jobs (job_id text PRIMARY KEY, status text NOT NULL, attempts integer NOT NULL DEFAULT 0, worker text,
#         reason text, outcome jsonb, started_at timestamptz NOT NULL DEFAULT now(),
#         updated_at timestamptz NOT NULL DEFAULT now())


async def begin(pool: asyncpg.Pool, job_id: str, worker: str) -> int | None:
    """Count a start of the job and return how many there have been; None when the job already ended."""
    attempts: int | None = await pool.fetchval(
        "INSERT INTO jobs (job_id, status, attempts, worker) VALUES ($1, $3, 1, $2)"
        " ON CONFLICT (job_id) DO UPDATE SET attempts = jobs.attempts + 1, worker = $2, updated_at = now()"
        " WHERE jobs.status = $3 RETURNING attempts",
        job_id,
        worker,
        JobStatus.RUNNING,
    )
    return attempts


async def has_ended(pool: asyncpg.Pool, job_id: str) -> bool:
    status = await pool.fetchval("SELECT status FROM jobs WHERE job_id = $1", job_id)
    return status is not None and JobStatus(status).is_terminal


async def finish(
    pool: asyncpg.Pool,
    bus: Bus,
    job_id: str,
    status: JobStatus,
    events: Sequence[Message],
    *,
    cause: Envelope | None,
    reason: str | None = None,
    record: dict[str, Any] | None = None,
) -> bool:
    """Record the outcome and stage its events in one transaction; False (nothing staged) if it had already ended."""
    async with pool.acquire() as conn, conn.transaction():
        recorded = await conn.fetchval(
            "INSERT INTO jobs (job_id, status, reason, outcome) VALUES ($1, $2, $3, $4::jsonb)"
            " ON CONFLICT (job_id) DO UPDATE SET status = $2, reason = $3, outcome = $4::jsonb, updated_at = now()"
            " WHERE jobs.status = $5 RETURNING true",
            job_id,
            status,
            reason,
            json.dumps(record or {}),
            JobStatus.RUNNING,
        )
        if not recorded:
            return False
        for event in events:
            await enqueue(conn, bus, event, correlation_id=job_id, causation=cause)
        return True
