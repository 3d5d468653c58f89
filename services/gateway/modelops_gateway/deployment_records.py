"""Staging a Deploy: the gateway's record of the deployment (so it reads `queued` until the inference service picks
it up) and the command in the outbox, in the caller's transaction. Used by `POST /v1/deployments` and by the jobs
projection, which deploys a succeeded fine-tuning job's adapter.

Produces: deployments.commands.v1 (Deploy), through the outbox."""

from __future__ import annotations

import asyncpg
from modelops_contracts import Deploy, Envelope
from modelops_shared.bus import Bus, enqueue


async def stage_deploy(
    conn: asyncpg.Connection, bus: Bus, command: Deploy, *, causation: Envelope | None = None
) -> None:
    """Record `command` as this gateway's deployment of its name (replacing an earlier one) and enqueue it; a Deploy
    caused by an event (`causation`) joins that event's correlation."""
    await conn.execute(
        """INSERT INTO deployments (name, base_model, adapters, requested_by) VALUES ($1, $2, $3, $4)
           ON CONFLICT (name) DO UPDATE SET base_model = excluded.base_model, adapters = excluded.adapters,
               requested_by = excluded.requested_by, requested_at = now(), removed_at = NULL, removed_by = NULL""",
        command.name,
        command.base_model,
        command.adapters,
        command.requested_by,
    )
    correlation_id = causation.correlation_id if causation else command.name
    await enqueue(conn, bus, command, correlation_id=correlation_id, causation=causation)
