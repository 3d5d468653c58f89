"""Projections: how each logged event changes the registry's tables, and the digest of the resulting state.

The Projector reads nothing but events and the tables, so replaying the log into empty tables rebuilds the
same state; live consumption and `replay` share it. The frequent events (submissions, registrations,
rejections, dataset versions) are buffered and written in bulk; the rest are applied one by one, after the
buffers are flushed, so the tables always change in log order.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from importlib.resources import files
from typing import Any

import asyncpg
from modelops_contracts import (
    ArtifactKind,
    ArtifactPromoted,
    ArtifactRegistered,
    ArtifactRejected,
    ArtifactSubmitted,
    CancelTraining,
    DatasetVersionCreated,
    Deploy,
    DeploymentFailed,
    DeploymentReady,
    DeploymentRemoved,
    JobStatus,
    LineageRelation,
    Message,
    Stage,
    StartTraining,
    TrainingCancelled,
    TrainingCheckpointed,
    TrainingCompleted,
    TrainingEventType,
    TrainingFailed,
    TrainingProgressed,
    TrainingStarted,
    Undeploy,
)
from modelops_shared.signing.canonical import canonical_json

from .eventlog import LoggedEvent

MIGRATIONS = files("modelops_registry") / "migrations"  # the tables, created and changed in order

# Tables in the state digest, each with its ordering key; the log itself is verified by its own chain.
PROJECTION_TABLES = {
    "submissions": "artifact_id",
    "artifacts": "id",
    "artifact_files": "artifact_id, path",
    "lineage": "parent_id, child_id, relation",
    "jobs": "id",
    "promotions": "artifact_id, seq",
    "deployments": "name",
    "deployment_replicas": "name, replica",
}


# Each buffer is written by one statement that takes one array per column, rows in buffer order (WITH ORDINALITY:
# when an id repeats, the first row is the one inserted, as row-by-row inserts would have it).
_INSERT_SUBMISSIONS = (
    "INSERT INTO submissions (artifact_id, status, body, submitted_at)"
    " SELECT id, 'pending', body, at FROM unnest($1::text[], $2::jsonb[], $3::timestamptz[]) WITH ORDINALITY"
    " AS s(id, body, at, n) ORDER BY n"
    " ON CONFLICT (artifact_id) DO NOTHING"
)
_INSERT_ARTIFACTS = (
    "INSERT INTO artifacts (id, kind, name, version, stage, digest, size, uri, bundle_uri, key_id, job_id, created_by,"
    " created_at, metrics, metadata, bundle)"
    " SELECT id, kind, name, version, stage, digest, size, uri, bundle_uri, key_id, job_id, created_by, created_at,"
    " metrics, metadata, bundle FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],"
    " $7::bigint[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::timestamptz[], $14::jsonb[],"
    " $15::jsonb[], $16::jsonb[]) WITH ORDINALITY AS a(id, kind, name, version, stage, digest, size, uri, bundle_uri,"
    " key_id, job_id, created_by, created_at, metrics, metadata, bundle, n) ORDER BY n"
    " ON CONFLICT (id) DO NOTHING"
)
_INSERT_LINEAGE = "INSERT INTO lineage SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) ON CONFLICT DO NOTHING"
_UPDATE_VERDICTS = (
    "UPDATE submissions SET status = v.status, reason = v.reason"
    " FROM unnest($1::text[], $2::text[], $3::text[]) AS v(id, status, reason) WHERE artifact_id = v.id"
)


class Projector:
    """Applies logged events in order within the caller's transaction; `flush` before reading the tables."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self._submissions: list[tuple[Any, ...]] = []
        self._artifacts: list[tuple[Any, ...]] = []
        self._files: list[tuple[Any, ...]] = []
        self._lineage: list[tuple[Any, ...]] = []
        self._verdicts: dict[str, tuple[str, str | None]] = {}  # the last verdict per id is the one that stands
        # Submissions seen but not yet decided: a registration reads its files and parents from here.
        self._undecided: dict[str, ArtifactSubmitted] = {}

    async def add(self, event: LoggedEvent) -> None:
        body, at = event.body, event.envelope.time
        match body:
            case ArtifactSubmitted():
                self._submissions.append((body.artifact_id, body.model_dump(mode="json"), at))
                self._undecided.setdefault(body.artifact_id, body)  # the first submission of an id is the one decided
            case ArtifactRegistered():
                await self._register(body, at)
            case ArtifactRejected():
                self._verdicts[body.artifact_id] = ("rejected", body.reason)
                self._undecided.pop(body.artifact_id, None)
            case DatasetVersionCreated():
                self._artifacts.append(_dataset_row(body, at))
            case _:
                await self.flush()
                await _project_one(self.conn, event)

    async def add_all(self, events: list[LoggedEvent]) -> None:
        for event in events:
            await self.add(event)
        await self.flush()

    async def flush(self) -> None:
        await _write_columns(self.conn, _INSERT_SUBMISSIONS, self._submissions)
        await _write_columns(self.conn, _INSERT_ARTIFACTS, self._artifacts)
        if self._files:  # after their artifacts (foreign key)
            await self.conn.copy_records_to_table("artifact_files", records=self._files)
            self._files.clear()
        await _write_columns(self.conn, _INSERT_LINEAGE, self._lineage)
        verdicts = [(artifact_id, *verdict) for artifact_id, verdict in self._verdicts.items()]
        self._verdicts.clear()
        await _write_columns(self.conn, _UPDATE_VERDICTS, verdicts)

    async def _register(self, body: ArtifactRegistered, at: datetime) -> None:
        submission = self._undecided.pop(body.artifact_id, None)
        if submission is None:  # submitted in an earlier batch
            await self.flush()
            submission = ArtifactSubmitted.model_validate(
                await self.conn.fetchval("SELECT body FROM submissions WHERE artifact_id = $1", body.artifact_id)
            )
        self._artifacts.append(
            (
                body.artifact_id,
                body.kind.value,
                body.name,
                body.version,
                body.stage.value,
                body.digest,
                body.size,
                body.uri,
                body.bundle_uri,
                body.key_id,
                submission.job_id,
                submission.created_by,
                at,
                submission.metrics,
                submission.metadata,
                body.bundle,
            )
        )
        self._files.extend((body.artifact_id, f.path, f.sha256, f.size) for f in submission.files)
        self._lineage.extend((p.artifact_id, body.artifact_id, p.relation.value) for p in submission.parents)
        self._verdicts[body.artifact_id] = ("registered", None)


async def _write_columns(conn: asyncpg.Connection, sql: str, rows: list[tuple[Any, ...]]) -> None:
    """Run `sql` once over `rows`, passed as one array per column, and empty the buffer."""
    if rows:
        await conn.execute(sql, *(list(column) for column in zip(*rows, strict=True)))
        rows.clear()


async def _project_one(conn: asyncpg.Connection, event: LoggedEvent) -> None:
    body, at = event.body, event.envelope.time
    match body:
        case ArtifactPromoted():
            await conn.execute("UPDATE artifacts SET stage = $2 WHERE id = $1", body.artifact_id, body.to_stage.value)
            await conn.execute(
                "INSERT INTO promotions VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                body.artifact_id,
                event.seq,
                body.from_stage.value,
                body.to_stage.value,
                body.actor,
                body.reason,
                body.at,
                body.key_id,
                body.signature,
                body.request_id,
            )
        case StartTraining() | CancelTraining() | TrainingStarted() | TrainingProgressed() | TrainingCheckpointed():
            await _job_progress(conn, body, at)
        case TrainingCompleted() | TrainingFailed() | TrainingCancelled():
            await _job_ended(conn, body, at)
        case Deploy() | Undeploy() | DeploymentReady() | DeploymentFailed() | DeploymentRemoved():
            await _deployment(conn, body, at)


def _dataset_row(body: DatasetVersionCreated, at: datetime) -> tuple[Any, ...]:
    """A dataset version is an artifact the gateway already validated; its digest is that of the event itself."""
    digest = hashlib.sha256(canonical_json(body.model_dump(mode="json"))).hexdigest()
    metadata = {"schema": body.schema_kind.value, "num_rows": body.num_rows}
    return (
        body.dataset_id,
        ArtifactKind.DATASET.value,
        body.name,
        str(body.version),
        Stage.DEV.value,
        digest,
        body.size_bytes,
        body.uri,
        None,
        None,
        None,
        body.created_by,
        at,
        {},
        metadata,
        None,
    )


_UNFINISHED = [status for status in JobStatus if not status.is_terminal]


async def _job_progress(conn: asyncpg.Connection, body: Any, at: datetime) -> None:
    await conn.execute(
        "INSERT INTO jobs (id, status, updated_at) VALUES ($1, $3, $2) ON CONFLICT (id) DO NOTHING",
        body.job_id,
        at,
        JobStatus.QUEUED,
    )
    match body:
        case StartTraining():
            await conn.execute(
                "UPDATE jobs SET submitted_by = $2, base_model = $3, dataset = $4, spec = $5 WHERE id = $1",
                body.job_id,
                body.submitted_by,
                body.base_model,
                f"{body.dataset}@{body.dataset_version}",
                body.model_dump(mode="json"),
            )
        case TrainingStarted():
            await conn.execute(
                "UPDATE jobs SET status = $5, worker = $2, total_steps = $3, started_at = $4, updated_at = $4"
                " WHERE id = $1 AND status = any($6::text[])",
                body.job_id,
                body.worker,
                body.total_steps,
                at,
                JobStatus.RUNNING,
                _UNFINISHED,
            )
        case TrainingProgressed():
            await conn.execute(
                "UPDATE jobs SET step = GREATEST(step, $2), total_steps = $3, updated_at = $4 WHERE id = $1",
                body.job_id,
                body.step,
                body.total_steps,
                at,
            )
        case _:
            await conn.execute("UPDATE jobs SET updated_at = $2 WHERE id = $1", body.job_id, at)


async def _job_ended(conn: asyncpg.Connection, body: Any, at: datetime) -> None:
    await _job_progress(conn, body, at)
    status = TrainingEventType.of(body).status
    match body:
        case TrainingCompleted():
            await conn.execute(
                "UPDATE jobs SET status = $2, step = $3, metrics = $4, adapter_artifact_id = $5, updated_at = $6"
                " WHERE id = $1",
                body.job_id,
                status,
                body.steps,
                body.metrics,
                body.adapter_artifact_id,
                at,
            )
        case TrainingFailed() | TrainingCancelled():
            await conn.execute(
                "UPDATE jobs SET status = $2, reason = $3, updated_at = $4 WHERE id = $1",
                body.job_id,
                status,
                body.reason,
                at,
            )


async def _deployment(conn: asyncpg.Connection, body: Any, at: datetime) -> None:
    statuses: dict[type[Message], str] = {
        Deploy: "queued",
        Undeploy: "removing",
        DeploymentReady: "ready",
        DeploymentFailed: "failed",
        DeploymentRemoved: "removed",
    }
    status = statuses[type(body)]
    if isinstance(body, Deploy):  # a new Deploy of the name: the replicas answer it afresh
        await conn.execute("DELETE FROM deployment_replicas WHERE name = $1", body.name)
    await conn.execute(
        "INSERT INTO deployments (name, status, updated_at) VALUES ($1, $2, $3)"
        " ON CONFLICT (name) DO UPDATE SET status = $2, updated_at = $3",
        body.name,
        status,
        at,
    )
    match body:
        case Deploy() | DeploymentReady():
            await conn.execute(
                "UPDATE deployments SET base_model = $2, adapters = $3, reason = NULL WHERE name = $1",
                body.name,
                body.base_model,
                body.adapters,
            )
            if isinstance(body, DeploymentReady):
                await conn.execute("UPDATE deployments SET backend = $2 WHERE name = $1", body.name, body.backend)
                await conn.executemany(
                    "INSERT INTO lineage VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                    [
                        (artifact, f"deployment:{body.name}", LineageRelation.DEPLOYED_AS.value)
                        for artifact in (body.base_model, *body.adapters)
                    ],
                )
        case DeploymentFailed() | DeploymentRemoved():
            await conn.execute("UPDATE deployments SET reason = $2 WHERE name = $1", body.name, body.reason)
    if isinstance(body, DeploymentReady | DeploymentFailed | DeploymentRemoved) and body.replica:
        await conn.execute(
            "INSERT INTO deployment_replicas (name, replica, status, reason, updated_at) VALUES ($1, $2, $3, $4, $5)"
            " ON CONFLICT (name, replica) DO UPDATE SET status = $3, reason = $4, updated_at = $5",
            body.name,
            body.replica,
            status,
            getattr(body, "reason", None) or None,
            at,
        )


async def state_digest(conn: asyncpg.Connection) -> str:
    """sha256 over the RFC 8785 form of every projection row, table by table in key order."""
    hasher = hashlib.sha256()
    for table, order in PROJECTION_TABLES.items():
        hasher.update(table.encode())
        for row in await conn.fetch(f"SELECT * FROM {table} ORDER BY {order}"):
            hasher.update(canonical_json({key: _plain(value) for key, value in row.items()}))
    return hasher.hexdigest()


def _plain(value: Any) -> Any:
    """Timestamps as ISO text; every other column (json and jsonb decode to plain values) is JSON already."""
    return value.isoformat() if isinstance(value, datetime) else value
