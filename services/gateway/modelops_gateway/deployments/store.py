"""The `deployments` table: the gateway's record of each deployment it asked for (so it reads `queued` until the
inference service picks it up), written with its Deploy or Undeploy command in the outbox, in the caller's
transaction. `stage_deploy` also serves the jobs handler, which deploys a succeeded fine-tuning job's adapter.

Produces: deployments.commands.v1 (Deploy, Undeploy), through the outbox."""

from __future__ import annotations

import re
from typing import Any

import asyncpg
from modelops_contracts import Deploy, Envelope, Undeploy
from modelops_contracts.deployments import DEPLOYMENT_NAME
from modelops_shared.bus import Bus, enqueue


async def stage_deploy(
    conn: asyncpg.Connection,
    bus: Bus,
    command: Deploy,
    *,
    causation: Envelope | None = None,
    routes: dict[str, Any] | None = None,
) -> None:
    """Record `command` as this gateway's deployment of its name (replacing an earlier one) and enqueue it; a Deploy
    caused by an event (`causation`) joins that event's correlation. A router's deployment records its `routes`."""
    await conn.execute(
        """INSERT INTO deployments (name, base_model, adapters, requested_by, routes) VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (name) DO UPDATE SET base_model = excluded.base_model, adapters = excluded.adapters,
               requested_by = excluded.requested_by, requested_at = now(), removed_at = NULL, removed_by = NULL,
               routes = excluded.routes""",
        command.name,
        command.base_model,
        command.adapters,
        command.requested_by,
        routes,
    )
    correlation_id = causation.correlation_id if causation else command.name
    await enqueue(conn, bus, command, correlation_id=correlation_id, causation=causation)


async def owner(conn: asyncpg.Connection, name: str) -> str | None:
    """Who deployed the live deployment `name` through this gateway (locked until the transaction ends); None when
    there is none."""
    owner: str | None = await conn.fetchval(
        "SELECT requested_by FROM deployments WHERE name = $1 AND removed_at IS NULL FOR UPDATE", name
    )
    return owner


_ACTIVE_SQL = (
    "SELECT name, base_model, adapters, requested_by, requested_at, routes FROM deployments WHERE removed_at IS NULL"
)


async def active_deployments(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await pool.fetch(_ACTIVE_SQL)
    return rows


async def active_deployment(pool: asyncpg.Pool, name: str) -> asyncpg.Record | None:
    return await pool.fetchrow(f"{_ACTIVE_SQL} AND name = $1", name)


async def routes_of(pool: asyncpg.Pool, name: str) -> dict[str, Any] | None:
    """A live router deployment's routes (label → target); None for any other name (one that is not a deployment's
    name at all, such as an adapter alias, without asking the database)."""
    if not re.fullmatch(DEPLOYMENT_NAME, name):
        return None
    routes: dict[str, Any] | None = await pool.fetchval(
        "SELECT routes FROM deployments WHERE name = $1 AND removed_at IS NULL", name
    )
    return routes


async def mark_removed(conn: asyncpg.Connection, name: str, *, removed_by: str) -> bool:
    """Record the removal of this gateway's live deployment `name`; False when it has none of that name."""
    removed: bool | None = await conn.fetchval(
        "UPDATE deployments SET removed_at = now(), removed_by = $2 WHERE name = $1 AND removed_at IS NULL"
        " RETURNING true",
        name,
        removed_by,
    )
    return bool(removed)


async def stage_undeploy(conn: asyncpg.Connection, bus: Bus, name: str, *, requested_by: str) -> None:
    await enqueue(conn, bus, Undeploy(name=name, requested_by=requested_by), correlation_id=name)
