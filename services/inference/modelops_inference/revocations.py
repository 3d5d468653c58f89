"""Revocations re-checked with the registry: every `inference_revocation_check_s`, each artifact this replica serves
(the base models and adapters of its ready deployments) is looked up, and one the registry now records as revoked
stops being served, as if its ArtifactPromoted to revoked had arrived. The Kafka event is the fast path; this bounds
how long a replica that missed it (replicas sharing a consumer group, a lagging partition, a replica that was
restoring) goes on serving a revoked artifact."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import httpx
from modelops_contracts import DeploymentFailed, Stage

from .deployments import Deployments

log = logging.getLogger(__name__)

Announce = Callable[[DeploymentFailed], Awaitable[None]]


async def recheck(deployments: Deployments, registry: httpx.AsyncClient, announce: Announce) -> list[str]:
    """One pass: the served artifacts the registry records as revoked, each taken out of service; their ids."""
    revoked = []
    for artifact_id in sorted(deployments.served_artifacts()):
        try:
            response = await registry.get(f"/v1/artifacts/{artifact_id}")
        except httpx.HTTPError as error:
            log.warning("revocation check of %s: registry unreachable (%s)", artifact_id, error)
            continue
        if response.status_code != 200 or response.json().get("stage") != Stage.REVOKED.value:
            continue
        log.warning("artifact %s is revoked in the registry; taking it out of service", artifact_id)
        for failed in await deployments.revoke(artifact_id, "revoked in the registry (periodic check)"):
            await announce(failed)
        revoked.append(artifact_id)
    return revoked


async def rechecking(deployments: Deployments, registry: httpx.AsyncClient, announce: Announce, every_s: float) -> None:
    """`recheck` every `every_s`, for as long as the service runs; a failed pass is logged and the next one comes."""
    while True:
        await asyncio.sleep(every_s)
        try:
            await recheck(deployments, registry, announce)
        except Exception:
            log.exception("revocation check failed")
