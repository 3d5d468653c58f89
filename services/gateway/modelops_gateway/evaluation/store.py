"""The `evaluation_jobs` table: a job's row, written with its command in the outbox, and what its events report.

Produces: evaluation.commands.v1 (StartEvaluation, CancelEvaluation), through the outbox."""

from __future__ import annotations

import secrets
import time
from typing import Any

import asyncpg
from modelops_contracts import JobStatus, StartEvaluation

from ..jobs.worker_jobs import WorkerJobs

_COLUMNS = (
    "id, status, submitted_by, model_id, adapter_id, deployment, suite, suite_version, spec, worker, done, total,"
    " report_id, metrics, failure_reason, error_type, cancel_requested_at, cancel_requested_by, created_at,"
    " started_at, finished_at, updated_at"
)


JOBS = WorkerJobs("evaluation_jobs", _COLUMNS, ("spec", "metrics"), "evaluation job")


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
