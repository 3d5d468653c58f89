"""Each dataset version announced once: DatasetVersionCreated is staged in the outbox in the transaction that records
the version in `dataset_versions`, and a reconciler announces the versions whose announcement was lost (why it
exists: the gateway README, "Datasets: one Delta commit, one announcement").

Produces: datasets.events.v1 (DatasetVersionCreated)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from modelops_contracts import DatasetVersionCreated
from modelops_shared.bus import Bus, enqueue

from ..settings import GatewaySettings
from . import store
from .lake import DatasetVersion, describe, list_datasets, versions

UNKNOWN_UPLOADER = "unknown"  # a commit written without the uploader's name (not by this gateway)

log = logging.getLogger(__name__)


def dataset_id(name: str, version: int) -> str:
    """The artifact id of a dataset version; derived, so that every announcement of a version names one artifact."""
    return f"dataset-{name}-v{version}"


async def announce(conn: asyncpg.Connection, bus: Bus, version: DatasetVersion, created_by: str) -> bool:
    """Stage DatasetVersionCreated in the caller's transaction unless the version was announced already;
    True if it was staged now."""
    artifact_id = dataset_id(version.name, version.version)
    if not await store.record_announcement(conn, version.name, version.version, artifact_id):
        return False
    event = DatasetVersionCreated(
        dataset_id=artifact_id,
        name=version.name,
        version=version.version,
        schema_kind=version.schema_kind,
        uri=version.uri,
        num_rows=version.num_rows,
        size_bytes=version.size_bytes,
        created_by=created_by,
    )
    await enqueue(conn, bus, event, correlation_id=artifact_id)
    return True


async def reconcile(pool: asyncpg.Pool, bus: Bus, settings: GatewaySettings) -> int:
    """Announce every committed dataset version that has no announcement; returns how many were announced."""
    latest = await asyncio.to_thread(list_datasets, settings)
    recorded = await store.announced_counts(pool)
    announced = 0
    for dataset in latest:
        count, newest = recorded.get(dataset.name, (0, -1))
        if count == newest + 1 and newest >= dataset.version:
            continue  # versions 0 to the latest, without a gap
        try:
            announced += await _reconcile_dataset(pool, bus, settings, dataset)
        except Exception:  # one unreadable dataset must not keep the others unannounced
            log.exception("could not reconcile the versions of dataset %s", dataset.name)
    return announced


async def _reconcile_dataset(pool: asyncpg.Pool, bus: Bus, settings: GatewaySettings, latest: DatasetVersion) -> int:
    done = await store.announced_versions(pool, latest.name)
    missing = [version for version in range(latest.version + 1) if version not in done]
    uploaders = {info.version: info.created_by for info in await asyncio.to_thread(versions, settings, latest.name)}
    announced = 0
    for number in missing:
        version = await asyncio.to_thread(describe, settings, latest.name, number)
        async with pool.acquire() as conn, conn.transaction():
            if await announce(conn, bus, version, uploaders.get(number) or UNKNOWN_UPLOADER):
                announced += 1
                log.warning(
                    "announced version %d of dataset %s, committed earlier without its event", number, latest.name
                )
    return announced


async def _reconcile_forever(pool: asyncpg.Pool, bus: Bus, settings: GatewaySettings) -> None:
    while True:
        try:
            await reconcile(pool, bus, settings)
        except Exception:
            log.exception(
                "dataset reconciliation failed; trying again in %g s", settings.gateway_dataset_reconcile_interval_s
            )
        await asyncio.sleep(settings.gateway_dataset_reconcile_interval_s)


@asynccontextmanager
async def reconciling(pool: asyncpg.Pool, bus: Bus, settings: GatewaySettings) -> AsyncIterator[None]:
    """Reconcile now and then periodically in the background, for as long as the block runs."""
    task = asyncio.create_task(_reconcile_forever(pool, bus, settings), name="dataset-reconciler")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
