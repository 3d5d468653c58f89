"""The `quantization_jobs` table: a job's row, written with its command in the outbox, and what its events report.

Produces: quantization.commands.v1 (StartQuantization, CancelQuantization), through the outbox."""

from __future__ import annotations

import secrets
import time
from typing import Any

import asyncpg
from modelops_contracts import JobStatus, StartQuantization

from ..jobs.worker_jobs import WorkerJobs

_COLUMNS = (
    "id, status, submitted_by, model_id, adapter_id, spec, worker, stage, done, total, outputs, warnings,"
    " failure_reason, error_type, cancel_requested_at, cancel_requested_by, created_at, started_at, finished_at,"
    " updated_at"
)


JOBS = WorkerJobs("quantization_jobs", _COLUMNS, ("spec", "outputs", "warnings"), "quantization job")


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
