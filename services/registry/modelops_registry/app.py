"""Composition root: settings, keys, policy, runtime (pool, bus, store), the tracked consumer and the HTTP app;
and what the `verify-log` and `rotate-key` commands open."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from modelops_contracts.catalog import (
    ARTIFACT_SUBMISSIONS,
    DATASET_EVENTS,
    DEPLOYMENT_COMMANDS,
    DEPLOYMENT_EVENTS,
    TRAINING_COMMANDS,
    TRAINING_EVENTS,
)
from modelops_shared.bus import TrackedConsumer
from modelops_shared.db import create_pool
from modelops_shared.service import DependencyOverrides, Runtime, create_service_app
from modelops_shared.signing import KeyRing
from modelops_shared.signing.keys import Algorithm
from modelops_shared.storage import open_store

from . import api
from .checkpoints import check_against_checkpoint, checkpointing
from .deps import Registry
from .domain import Policy
from .handlers import Registrar
from .settings import RegistrySettings
from .store import eventlog
from .store.projections import MIGRATIONS

CONSUMED = (
    ARTIFACT_SUBMISSIONS,
    TRAINING_COMMANDS,
    TRAINING_EVENTS,
    DATASET_EVENTS,
    DEPLOYMENT_COMMANDS,
    DEPLOYMENT_EVENTS,
)


def create_app(settings: RegistrySettings | None = None, *, overrides: DependencyOverrides | None = None) -> FastAPI:
    """The registry's app; `overrides` replace its dependencies (`deps.get_registry`) with a test's fakes."""
    settings = settings or RegistrySettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        keys = KeyRing.load_or_create(settings.keys_dir, settings.registry_signing_algorithm)
        policy = Policy.from_file(settings.registry_policy_file)
        async with Runtime.started(settings, schema=settings.registry_schema, migrations=MIGRATIONS) as runtime:
            consumer = TrackedConsumer(
                runtime.bus,
                runtime.pool,
                CONSUMED,
                settings.registry_schema,
                Registrar(runtime.store, keys, runtime.bus, settings.registry_url).handle,
            )
            await consumer.start()
            app.state.registry = Registry(runtime=runtime, keys=keys, policy=policy)
            app.state.readiness_checks = runtime.readiness_checks()
            every_s = settings.registry_checkpoint_every_s
            checkpoints = checkpointing(runtime.pool, runtime.store, keys, settings.registry_schema, every_s)
            heads = asyncio.create_task(checkpoints) if every_s else None
            try:
                yield
            finally:
                if heads is not None:
                    heads.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await heads
                await consumer.stop()

    app = create_service_app(
        settings, title="ModelOps registry", lifespan=lifespan, overrides=overrides, open_paths=("/v1/state-digest",)
    )
    app.include_router(api.router)
    return app


async def verify_log(settings: RegistrySettings) -> int:
    """Walk the log's hash chain and compare it with the last signed checkpoint: 0 when intact, 1 (each problem on
    stderr) when a row was tampered with or a suffix rewritten."""
    pool = await create_pool(settings, settings.registry_schema)
    keys = KeyRing.load_or_create(settings.keys_dir, settings.registry_signing_algorithm)
    try:
        async with pool.acquire() as conn:
            problems = await eventlog.verify(conn)
            store = open_store(settings.store_url, settings)
            problems += await check_against_checkpoint(conn, store, keys, settings.registry_schema)
            length = await conn.fetchval("SELECT seq FROM event_log_head")
    finally:
        await pool.close()
    for problem in problems:
        print(f"TAMPERED: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(f"event log intact: {length} events")
    return 0


def rotate_key(settings: RegistrySettings, algorithm: Algorithm | None) -> int:
    """Make a new active signing key (of the configured algorithm unless given); old public keys stay."""
    keys = KeyRing.load_or_create(settings.keys_dir, settings.registry_signing_algorithm)
    new = keys.rotate(algorithm or settings.registry_signing_algorithm)
    print(f"active key: {new.key_id} ({new.algorithm}); {len(keys.public_keys())} public keys kept")
    return 0
