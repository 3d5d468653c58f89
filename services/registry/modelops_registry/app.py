"""Composition root: settings, keys, policy, runtime (pool, bus, store), the tracked consumer and the HTTP app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.resources import files

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
from modelops_shared.service import Runtime, create_service_app
from modelops_shared.signing import KeyRing

from . import api
from .domain import Policy
from .handlers import Registrar
from .settings import RegistrySettings

MIGRATIONS = files("modelops_registry") / "migrations"
CONSUMED = (
    ARTIFACT_SUBMISSIONS,
    TRAINING_COMMANDS,
    TRAINING_EVENTS,
    DATASET_EVENTS,
    DEPLOYMENT_COMMANDS,
    DEPLOYMENT_EVENTS,
)


def create_app(settings: RegistrySettings | None = None) -> FastAPI:
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
            app.state.registry = api.Registry(runtime=runtime, keys=keys, policy=policy)
            app.state.readiness_checks = runtime.readiness_checks()
            try:
                yield
            finally:
                await consumer.stop()

    app = create_service_app(settings, title="ModelOps registry", lifespan=lifespan)
    app.include_router(api.router)
    return app
