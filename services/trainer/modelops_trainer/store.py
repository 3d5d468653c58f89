"""SQL: the trainer's ledger of jobs in Postgres (named `store` as in every service; the object store is
`modelops_shared.storage`): starts counted, outcomes written with the events that announce them."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg
from modelops_contracts import Envelope, JobStatus, Message
from modelops_shared.bus import Bus, enqueue


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
    steps: int | None = None,
    adapter_artifact_id: str | None = None,
    reason: str | None = None,
) -> bool:
    """Record the outcome and stage its events in one transaction; False (nothing staged) if it had already ended."""
    async with pool.acquire() as conn, conn.transaction():
        recorded = await conn.fetchval(
            "INSERT INTO jobs (job_id, status, steps, adapter_artifact_id, reason) VALUES ($1, $2, $3, $4, $5)"
            " ON CONFLICT (job_id) DO UPDATE SET status = $2, steps = $3, adapter_artifact_id = $4, reason = $5,"
            " updated_at = now() WHERE jobs.status = $6 RETURNING true",
            job_id,
            status,
            steps,
            adapter_artifact_id,
            reason,
            JobStatus.RUNNING,
        )
        if not recorded:
            return False
        for event in events:
            await enqueue(conn, bus, event, correlation_id=job_id, causation=cause)
        return True
