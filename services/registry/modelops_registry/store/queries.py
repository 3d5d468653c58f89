"""Read side: the registry's questions over its projections and log (listing, lineage, history, time travel)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

ARTIFACT_COLUMNS = (
    "id, kind, name, version, stage, digest, size, uri, bundle_uri, key_id, job_id, created_by, created_at,"
    " metrics, metadata"
)


async def list_artifacts(
    conn: asyncpg.Connection, *, kind: str | None, stage: str | None, name: str | None, after: str | None, limit: int
) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"SELECT {ARTIFACT_COLUMNS} FROM artifacts"
        " WHERE ($1::text IS NULL OR kind = $1) AND ($2::text IS NULL OR stage = $2)"
        " AND ($3::text IS NULL OR name = $3) AND ($4::text IS NULL OR id > $4)"
        " ORDER BY id LIMIT $5",
        kind,
        stage,
        name,
        after,
        limit,
    )
    return [dict(row) for row in rows]


async def get_artifact(conn: asyncpg.Connection, artifact_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(f"SELECT {ARTIFACT_COLUMNS} FROM artifacts WHERE id = $1", artifact_id)
    return dict(row) if row else None


async def submission(conn: asyncpg.Connection, artifact_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow("SELECT artifact_id, status, reason FROM submissions WHERE artifact_id = $1", artifact_id)
    return dict(row) if row else None


async def bundle(conn: asyncpg.Connection, artifact_id: str) -> dict[str, Any] | None:
    bundle: dict[str, Any] | None = await conn.fetchval("SELECT bundle FROM artifacts WHERE id = $1", artifact_id)
    return bundle


async def files(conn: asyncpg.Connection, artifact_id: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT path, sha256, size FROM artifact_files WHERE artifact_id = $1 ORDER BY path", artifact_id
    )
    return [dict(row) for row in rows]


async def lineage(conn: asyncpg.Connection, artifact_id: str) -> dict[str, list[dict[str, Any]]]:
    """Every edge above (ancestors) and below (descendants) the artifact, walked transitively."""
    ancestors = await conn.fetch(
        "WITH RECURSIVE up(parent_id, child_id, relation) AS ("
        " SELECT parent_id, child_id, relation FROM lineage WHERE child_id = $1"
        " UNION SELECT l.parent_id, l.child_id, l.relation FROM lineage l JOIN up ON l.child_id = up.parent_id)"
        " SELECT * FROM up ORDER BY child_id, parent_id",
        artifact_id,
    )
    descendants = await conn.fetch(
        "WITH RECURSIVE down(parent_id, child_id, relation) AS ("
        " SELECT parent_id, child_id, relation FROM lineage WHERE parent_id = $1"
        " UNION SELECT l.parent_id, l.child_id, l.relation FROM lineage l JOIN down ON l.parent_id = down.child_id)"
        " SELECT * FROM down ORDER BY parent_id, child_id",
        artifact_id,
    )
    return {"ancestors": [dict(r) for r in ancestors], "descendants": [dict(r) for r in descendants]}


async def promotions(conn: asyncpg.Connection, artifact_id: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT artifact_id, seq, from_stage, to_stage, actor, reason, at, key_id, signature"
        " FROM promotions WHERE artifact_id = $1 ORDER BY seq",
        artifact_id,
    )
    return [dict(row) for row in rows]


async def stage_at(conn: asyncpg.Connection, artifact_id: str, at: datetime) -> str | None:
    """The artifact's stage at `at`: its last promotion by then, else dev since registration; None before that."""
    return await conn.fetchval(  # type: ignore[no-any-return]
        "SELECT coalesce("
        " (SELECT to_stage FROM promotions WHERE artifact_id = a.id AND at <= $2 ORDER BY at DESC, seq DESC LIMIT 1),"
        " 'dev') FROM artifacts a WHERE a.id = $1 AND a.created_at <= $2",
        artifact_id,
        at,
    )


async def in_stage_at(conn: asyncpg.Connection, stage: str, at: datetime) -> list[dict[str, Any]]:
    """Every artifact whose stage at `at` was `stage` ("what was in prod at T")."""
    rows = await conn.fetch(
        f"SELECT {ARTIFACT_COLUMNS} FROM ("
        "  SELECT a.*, coalesce((SELECT to_stage FROM promotions p WHERE p.artifact_id = a.id AND p.at <= $2"
        "                        ORDER BY p.at DESC, p.seq DESC LIMIT 1), 'dev') AS stage_then"
        "  FROM artifacts a WHERE a.created_at <= $2) s"
        " WHERE stage_then = $1 ORDER BY id",
        stage,
        at,
    )
    return [dict(row) for row in rows]


async def job(conn: asyncpg.Connection, job_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow("SELECT * FROM jobs WHERE id = $1", job_id)
    return dict(row) if row else None


async def job_events(conn: asyncpg.Connection, job_id: str) -> list[dict[str, Any]]:
    """The job's timeline straight from the log: every training command and event about it, in order."""
    rows = await conn.fetch(
        "SELECT seq, canonical FROM event_log WHERE subject = $1 AND type LIKE 'modelops.training.%' ORDER BY seq",
        job_id,
    )
    return [{"seq": row["seq"], "event": bytes(row["canonical"])} for row in rows]


# Projected deployment statuses that mean "still wanted": everything but an Undeploy's `removing` and `removed`.
_UNWANTED_DEPLOYMENT_STATUSES = ("removing", "removed")


async def deployments(conn: asyncpg.Connection, *, wanted: bool) -> list[dict[str, Any]]:
    """Every projected deployment by name; with `wanted`, only those not undeployed (what inference restores)."""
    rows = await conn.fetch(
        "SELECT name, base_model, adapters, status, backend, reason, updated_at,"
        " coalesce((SELECT jsonb_agg(jsonb_build_object('replica', r.replica, 'status', r.status, 'reason', r.reason,"
        " 'updated_at', r.updated_at) ORDER BY r.replica) FROM deployment_replicas r WHERE r.name = d.name), '[]')"
        " AS replicas FROM deployments d WHERE NOT $1::boolean OR status <> ALL($2::text[]) ORDER BY name",
        wanted,
        list(_UNWANTED_DEPLOYMENT_STATUSES),
    )
    return [dict(row) for row in rows]


# The base an artifact was made from: its metadata says so (trainer, quantizer), else its lineage does.
_BASE_OF = (
    "coalesce(a.metadata->>'base_model', (SELECT parent_id FROM lineage"
    " WHERE child_id = a.id AND relation IN ('trained_from', 'quantized_from') ORDER BY parent_id LIMIT 1))"
)
# The registered, unrevoked eval reports of artifact `x.id` itself: of an adapter, those naming it; of a model, those
# of the model alone (a report of model + adapter is the adapter's).
_REPORTS_OF_X = (
    "SELECT r.id, r.metadata->>'suite' AS suite, r.metrics, r.created_at FROM lineage l"
    " JOIN artifacts r ON r.id = l.child_id"
    " WHERE l.parent_id = x.id AND l.relation = 'evaluation_of' AND r.kind = 'eval_report' AND r.stage <> 'revoked'"
    " AND (r.metadata->>'adapter' = x.id OR (r.metadata->>'model' = x.id AND r.metadata->>'adapter' IS NULL))"
)


async def eval_reports(conn: asyncpg.Connection, artifact_id: str) -> list[dict[str, Any]]:
    """The artifact's eval reports, newest first."""
    rows = await conn.fetch(
        f"SELECT rep.* FROM (SELECT $1::text AS id) x, LATERAL ({_REPORTS_OF_X}) rep ORDER BY rep.created_at DESC",
        artifact_id,
    )
    return [dict(row) for row in rows]


async def incumbent_reports(conn: asyncpg.Connection, artifact_id: str, stage: str) -> list[dict[str, Any]]:
    """The eval reports of the other artifacts of the same kind and base in `stage` now, newest first."""
    rows = await conn.fetch(
        f"WITH me AS (SELECT a.kind, {_BASE_OF} AS base FROM artifacts a WHERE a.id = $1),"
        f" x AS (SELECT a.id FROM artifacts a, me WHERE a.stage = $2 AND a.kind = me.kind AND a.id <> $1"
        f" AND {_BASE_OF} = me.base)"
        f" SELECT rep.* FROM x, LATERAL ({_REPORTS_OF_X}) rep ORDER BY rep.created_at DESC",
        artifact_id,
        stage,
    )
    return [dict(row) for row in rows]
