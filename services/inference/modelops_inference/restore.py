"""Restore on start: re-deploy every deployment the registry records as still wanted, so a restarted replica serves
again what it served, without waiting for new commands. Each one is fetched and verified again (a tampered or revoked
artifact fails it) and announced as usual: DeploymentReady or DeploymentFailed, through the outbox."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg
import httpx
from modelops_contracts import Deploy
from modelops_shared.bus import Bus, enqueue

from .deployments import Deployments

log = logging.getLogger(__name__)
REQUESTED_BY = "inference-restore"


async def wanted_deployments(registry: httpx.AsyncClient, retry_s: float) -> list[dict[str, Any]]:
    """The registry's deployments that are not undeployed, asking again until it answers."""
    while True:
        try:
            response = await registry.get("/v1/deployments", params={"wanted": "true"})
            if response.status_code == 200:
                return list(response.json())
            if response.status_code == 404:
                log.warning("the registry offers no deployments query: nothing is restored")
                return []
            log.warning("registry answered %s to the deployments query; retrying", response.status_code)
        except httpx.HTTPError as error:
            log.warning("registry unreachable for the deployments query (%s); retrying", error)
        await asyncio.sleep(retry_s)


async def restore(deployments: Deployments, registry: httpx.AsyncClient, pool: asyncpg.Pool, bus: Bus) -> int:
    """Re-deploy what is wanted, one by one; how many deployments were attempted (a failure is logged, not raised:
    this runs as a background task and the service goes on serving what commands bring).

    Why ask the registry rather than keep a table of desired deployments here: the registry already projects every
    Deploy/Undeploy command (and the events that answer them) into its `deployments` table and serves it over HTTP
    (`GET /v1/deployments?wanted=true`). It is the platform's one record of what should be served, so a replica
    starting on an empty schema (a new pod, a scale-out) learns the same set as one that restarts, and there is no
    second copy that could drift from it. The price is that the registry's view may trail the commands this replica
    consumed just before it stopped, so:
    - any name a command touches after start is left to that command (it is newer than the view;
      `Deployments.restore`);
    - a command consumed in the instants before a restart that the registry had not yet projected is missed (or, for
      an Undeploy, undone) until the next command about that name — a window as long as the registry's consumer lag.
    The registry may be starting too: the query is retried until it answers, in the background, so serving starts at
    once.
    """
    try:
        return await _restore(deployments, registry, pool, bus)
    except Exception:
        log.exception("restoring deployments from the registry failed")
        return -1


async def _restore(deployments: Deployments, registry: httpx.AsyncClient, pool: asyncpg.Pool, bus: Bus) -> int:
    attempted = 0
    for row in await wanted_deployments(registry, deployments.settings.inference_restore_retry_s):
        if not row.get("base_model"):
            continue  # never commanded here (an event for a name the registry saw without its Deploy)
        try:
            command = Deploy(
                name=row["name"], base_model=row["base_model"], adapters=row["adapters"], requested_by=REQUESTED_BY
            )
        except ValueError as error:
            log.warning("cannot restore deployment %s: %s", row.get("name"), error)
            continue
        outcome = await deployments.restore(command)
        if outcome is None:
            continue
        attempted += 1
        log.info("restored deployment %s: %s", command.name, type(outcome).__name__)
        async with pool.acquire() as conn, conn.transaction():
            await enqueue(conn, bus, outcome)
    return attempted
