"""The jobs tables: a job's row and its numbered events, written in the caller's transaction and announced on commit
to the streams of every replica (NOTIFY on the schema's channel); reads for the routes."""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, TypeAlias

import asyncpg
from modelops_contracts import TERMINAL_JOB_STATUSES, JobStatus, StartTraining, TrainingEventType

CHANNEL_SQL = "'job_events_' || current_schema()"
# Columns a later event must not overwrite: a resumed job keeps the time it first started.
_KEEP_FIRST = frozenset({"started_at"})
_EVENT_COLUMNS = "job_id, seq, type, data, at"

Executor: TypeAlias = asyncpg.Connection | asyncpg.Pool


def new_job_id() -> str:
    """`ftjob-` (OpenAI's prefix, so one id serves both APIs), then the time in ms and randomness, in hex: ids sort
    by creation, which lets the primary key page jobs newest first."""
    return f"ftjob-{time.time_ns() // 1_000_000:011x}{secrets.token_hex(7)}"


@dataclass(frozen=True)
class JobEvent:
    job_id: str
    seq: int
    type: str
    data: dict[str, Any]
    at: datetime

    @property
    def terminal(self) -> bool:
        return self.type in TERMINAL_JOB_STATUSES  # a terminal event's type is the status it leaves


@dataclass(frozen=True)
class Job:
    id: str
    kind: str
    status: str
    submitted_by: str
    base_model: str
    base_model_id: str
    base_model_name: str
    dataset: str
    dataset_version: int
    dataset_id: str
    spec: dict[str, Any]
    worker: str | None
    step: int | None
    total_steps: int | None
    loss: float | None
    learning_rate: float | None
    tokens_per_second: float | None
    estimated_finish: datetime | None
    metrics: dict[str, float]
    adapter_artifact_id: str | None
    failure_reason: str | None
    error_type: str | None
    cancel_requested_at: datetime | None
    cancel_requested_by: str | None
    deploy_when_completed: bool
    last_seq: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL_JOB_STATUSES

    @property
    def command(self) -> StartTraining:
        return StartTraining.model_validate(self.spec)

    @property
    def fine_tuned_model(self) -> str | None:
        """`ft:<base model>:<suffix>:<job id>` once the adapter exists, as OpenAI names fine-tuned models."""
        if self.status != JobStatus.COMPLETED:
            return None
        return f"ft:{self.base_model_name}:{self.command.suffix or ''}:{self.id}"


_JOB_FIELDS = tuple(field.name for field in fields(Job))
_JOB_COLUMNS = ", ".join(_JOB_FIELDS)


async def insert_job(
    conn: asyncpg.Connection,
    command: StartTraining,
    *,
    kind: str,
    base_model: str,
    base_model_name: str,
    dataset: str,
    dataset_id: str,
    deploy_when_completed: bool = False,
    estimated_cost: float | None = None,
) -> Job:
    """A queued job for `command`, with its first event (seq 1), in the caller's transaction: one statement."""
    row = await conn.fetchrow(
        "WITH job AS (INSERT INTO jobs (id, kind, status, submitted_by, base_model, base_model_id, base_model_name,"
        " dataset, dataset_version, dataset_id, spec, deploy_when_completed, last_seq, estimated_cost)"
        f" VALUES ($1, $2, $13, $3, $4, $5, $6, $7, $8, $9, $10, $12, 1, $15) RETURNING {_JOB_COLUMNS}),"
        f" queued AS (INSERT INTO job_events ({_EVENT_COLUMNS})"
        " SELECT id, 1, $14, $11::jsonb, created_at FROM job)"
        f" SELECT {_JOB_COLUMNS}, pg_notify({CHANNEL_SQL}, id) FROM job",
        command.job_id,
        kind,
        command.submitted_by,
        base_model,
        command.base_model,
        base_model_name,
        dataset,
        command.dataset_version,
        dataset_id,
        command.model_dump(mode="json"),
        {"submitted_by": command.submitted_by},
        deploy_when_completed,
        JobStatus.QUEUED.value,
        TrainingEventType.QUEUED.value,
        estimated_cost,
    )
    return Job(**{name: row[name] for name in _JOB_FIELDS})


async def record_event(
    conn: asyncpg.Connection,
    job_id: str,
    event_type: str,
    data: dict[str, Any],
    *,
    at: datetime,
    message_id: str | None = None,
    changes: Mapping[str, Any] | None = None,
) -> int | None:
    """Append an event to an unfinished job and apply `changes` (column: value, columns named by code) to its row,
    in one statement; returns the event's seq, or None when the job is unknown here or already finished."""
    changes = dict(changes or {})
    assignments = ["last_seq = last_seq + 1", "updated_at = now()"]
    for index, column in enumerate(changes, start=7):
        assignments.append(
            f"{column} = coalesce({column}, ${index})" if column in _KEEP_FIRST else f"{column} = ${index}"
        )
    row = await conn.fetchrow(
        f"WITH job AS (UPDATE jobs SET {', '.join(assignments)} WHERE id = $1 AND status <> ALL($2::text[])"
        " RETURNING id, last_seq),"
        f" event AS (INSERT INTO job_events ({_EVENT_COLUMNS}, message_id) SELECT id, last_seq, $3::text, $4::jsonb,"
        " $5::timestamptz, $6::text FROM job)"
        # Delivered when the transaction commits, to every replica listening: each wakes its streams of this job.
        f" SELECT last_seq, pg_notify({CHANNEL_SQL}, id) FROM job",
        job_id,
        sorted(TERMINAL_JOB_STATUSES),
        event_type,
        data,
        at,
        message_id,
        *changes.values(),
    )
    return None if row is None else int(row["last_seq"])


async def get_job(db: Executor, job_id: str) -> Job | None:
    row = await db.fetchrow(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = $1", job_id)
    return Job(**dict(row)) if row else None


async def lock_job(conn: asyncpg.Connection, job_id: str) -> Job | None:
    """The job, locked until the caller's transaction ends (its events wait meanwhile)."""
    row = await conn.fetchrow(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = $1 FOR UPDATE", job_id)
    return Job(**dict(row)) if row else None


async def list_jobs(db: Executor, *, status: str | None, kind: str | None, before: str | None, limit: int) -> list[Job]:
    """Jobs newest first, those older than the job `before` when given."""
    rows = await db.fetch(
        f"SELECT {_JOB_COLUMNS} FROM jobs WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR kind = $2)"
        " AND ($3::text IS NULL OR id < $3) ORDER BY id DESC LIMIT $4",
        status,
        kind,
        before,
        limit,
    )
    return [Job(**dict(row)) for row in rows]


async def events_after(db: Executor, job_id: str, after: int, *, limit: int = 500) -> list[JobEvent]:
    """The job's events with a seq above `after`, oldest first."""
    rows = await db.fetch(
        f"SELECT {_EVENT_COLUMNS} FROM job_events WHERE job_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        job_id,
        after,
        limit,
    )
    return [JobEvent(**dict(row)) for row in rows]


async def events_before(db: Executor, job_id: str, before: int | None, *, limit: int) -> list[JobEvent]:
    """The job's events with a seq below `before` (all when None), newest first."""
    rows = await db.fetch(
        f"SELECT {_EVENT_COLUMNS} FROM job_events WHERE job_id = $1 AND ($2::bigint IS NULL OR seq < $2)"
        " ORDER BY seq DESC LIMIT $3",
        job_id,
        before,
        limit,
    )
    return [JobEvent(**dict(row)) for row in rows]
