"""Reads of the console's message index (`message_log`, written by the recorder): the jobs it saw started, with
the status their events left them in, and the flow of one job — every message that carries its id as correlation
or shares a trace with one that does, in time order."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg
from modelops_contracts import JobStatus

from .domain import JOB_KIND_BY_START, JOB_KINDS, FlowNotFound, JobKind, job_status, service_of

FLOW_LIMIT = 2000


@dataclass(frozen=True)
class JobSummary:
    id: str
    kind: str
    status: JobStatus
    submitted_at: datetime
    last_event_at: datetime
    last_event: str
    trace_id: str | None
    service: str | None  # that submitted it


@dataclass(frozen=True)
class Hop:
    at: datetime
    topic: str
    partition: int
    offset: int
    type: str | None
    service: str | None  # that published it
    subject: str | None
    message_id: str | None
    correlation_id: str | None
    causation_id: str | None
    trace_id: str | None
    recorded_at: datetime
    gap_s: float | None  # since the hop before it


async def recent_jobs(pool: asyncpg.Pool, kinds: tuple[JobKind, ...] = JOB_KINDS, limit: int = 50) -> list[JobSummary]:
    """The latest jobs whose start command was seen, newest first, each with its events' types in order."""
    starts = [kind.start.type for kind in kinds]
    rows = await pool.fetch(
        """
        WITH started AS (
            SELECT DISTINCT ON (correlation_id) correlation_id, type, at, trace_id, source
            FROM message_log WHERE type = any($1::text[]) AND correlation_id IS NOT NULL
            ORDER BY correlation_id, at
        ), latest AS (SELECT * FROM started ORDER BY at DESC LIMIT $2)
        SELECT l.correlation_id, l.type, l.at, l.trace_id, l.source, e.types, e.last_at
        FROM latest l
        CROSS JOIN LATERAL (
            SELECT array_agg(m.type ORDER BY m.at, m.topic, m."offset") AS types, max(m.at) AS last_at
            FROM message_log m WHERE m.correlation_id = l.correlation_id AND m.type = any($3::text[])
        ) e
        ORDER BY l.at DESC
        """,
        starts,
        limit,
        [event for kind in kinds for event in kind.event_types],
    )
    jobs = []
    for row in rows:
        kind = JOB_KIND_BY_START[row["type"]]
        types = [t for t in row["types"] or [] if t in kind.event_types] or [kind.start.type]
        jobs.append(
            JobSummary(
                id=row["correlation_id"],
                kind=kind.name,
                status=job_status(kind, types),
                submitted_at=row["at"],
                last_event_at=row["last_at"],
                last_event=types[-1],
                trace_id=row["trace_id"],
                service=service_of(row["source"]),
            )
        )
    return jobs


async def flow(pool: asyncpg.Pool, flow_id: str) -> list[Hop]:
    """Every message correlated with `flow_id` or in a trace one of them is in, oldest first (at most FLOW_LIMIT)."""
    rows = await pool.fetch(
        """
        WITH traces AS (
            SELECT DISTINCT trace_id FROM message_log WHERE correlation_id = $1 AND trace_id IS NOT NULL
        )
        SELECT * FROM message_log
        WHERE correlation_id = $1 OR trace_id IN (SELECT trace_id FROM traces)
        ORDER BY at, topic, partition, "offset" LIMIT $2
        """,
        flow_id,
        FLOW_LIMIT,
    )
    if not rows:
        raise FlowNotFound(flow_id)
    previous = [None, *(row["at"] for row in rows[:-1])]
    return [
        Hop(
            at=row["at"],
            topic=row["topic"],
            partition=row["partition"],
            offset=row["offset"],
            type=row["type"],
            service=service_of(row["source"]),
            subject=row["subject"],
            message_id=row["message_id"],
            correlation_id=row["correlation_id"],
            causation_id=row["causation_id"],
            trace_id=row["trace_id"],
            recorded_at=row["recorded_at"],
            gap_s=(row["at"] - before).total_seconds() if before else None,
        )
        for row, before in zip(rows, previous, strict=True)
    ]
