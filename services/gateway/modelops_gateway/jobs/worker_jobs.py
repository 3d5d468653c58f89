"""What the gateway keeps of a job another service's workers run (quantization, evaluation): its row in that kind's
table, brought up to date from the workers' events, and a cancel recorded with its command in one transaction.

Produces: the kind's commands topic (its cancel command), through the outbox."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
from modelops_contracts import TERMINAL_JOB_STATUSES, JobStatus, Message
from modelops_shared.bus import Bus, enqueue

from ..access.domain import Role, check_owner
from .domain import JobFinished, JobNotFound


@dataclass(frozen=True)
class WorkerJobs:
    """One kind's table: its name, the columns a job reads back, and which of them hold JSON."""

    table: str
    columns: str
    json_columns: tuple[str, ...]
    what: str  # "quantization job": how a refusal names one

    async def get(
        self, db: asyncpg.Connection | asyncpg.Pool, job_id: str, *, lock: bool = False
    ) -> dict[str, Any] | None:
        row = await db.fetchrow(
            f"SELECT {self.columns} FROM {self.table} WHERE id = $1{' FOR UPDATE' if lock else ''}", job_id
        )
        return dict(row) if row else None

    async def update(self, conn: asyncpg.Connection, job_id: str, changes: dict[str, Any]) -> bool:
        """Apply an event's changes to a job that has not ended; False for a job that ended, or another gateway's."""
        names = list(changes)
        assignments = ", ".join(
            f"{name} = ${i + 2}{'::jsonb' if name in self.json_columns else ''}" for i, name in enumerate(names)
        )
        updated = await conn.fetchval(
            f"UPDATE {self.table} SET {assignments}, updated_at = now()"
            f" WHERE id = $1 AND NOT status = ANY(${len(names) + 2}::text[]) RETURNING true",
            job_id,
            *(changes[name] for name in names),
            sorted(TERMINAL_JOB_STATUSES),
        )
        return bool(updated)

    async def cancel(
        self,
        conn: asyncpg.Connection,
        bus: Bus,
        job_id: str,
        command: Callable[[], Message],
        *,
        requested_by: str,
        role: Role,
    ) -> dict[str, Any]:
        """Ask the job's worker to stop (`command` makes the cancel), as its submitter or an admin; asking again
        sends nothing more."""
        job = await self.get(conn, job_id, lock=True)
        if job is None:
            raise JobNotFound(job_id, what=self.what)
        check_owner(requested_by, role, job["submitted_by"], f"job {job_id}")
        if JobStatus(job["status"]).is_terminal:
            raise JobFinished(job_id, job["status"])
        if job["cancel_requested_at"] is None:
            await conn.execute(
                f"UPDATE {self.table} SET cancel_requested_at = $2, cancel_requested_by = $3, updated_at = now()"
                " WHERE id = $1",
                job_id,
                datetime.now(UTC),
                requested_by,
            )
            await enqueue(conn, bus, command(), correlation_id=job_id)
            job = await self.get(conn, job_id)
            assert job is not None
        return job
