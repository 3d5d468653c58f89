"""Composition root: settings, runtime (pool, bus, store, outbox relay, the projections of registry and usage
events), the artifact client, and the HTTP app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from importlib.resources import files

from fastapi import FastAPI
from modelops_contracts.catalog import MARKETPLACE_EVENTS, REGISTRY_ARTIFACTS
from modelops_shared.artifacts import ArtifactClient
from modelops_shared.service import DependencyOverrides, Runtime, Subscription, create_service_app

from . import api, handlers
from .deps import Marketplace
from .settings import MarketplaceSettings

MIGRATIONS = files("modelops_marketplace") / "migrations"


def create_app(settings: MarketplaceSettings | None = None, *, overrides: DependencyOverrides | None = None) -> FastAPI:
    """The marketplace's app; `overrides` replace its dependencies (`deps.get_marketplace`) with a test's fakes."""
    settings = settings or MarketplaceSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        canaries = ThreadPoolExecutor(max_workers=1, thread_name_prefix="canary")
        try:
            async with ArtifactClient.from_settings(settings, settings.work_dir / "cache") as artifacts:
                subscriptions = (
                    Subscription(
                        REGISTRY_ARTIFACTS,
                        f"{settings.marketplace_schema}-registry",
                        handlers.registry_projection(artifacts),
                    ),
                    Subscription(MARKETPLACE_EVENTS, f"{settings.marketplace_schema}-usage", handlers.count_usage),
                )
                async with Runtime.started(
                    settings, schema=settings.marketplace_schema, migrations=MIGRATIONS, subscriptions=subscriptions
                ) as runtime:
                    app.state.marketplace = Marketplace(settings, runtime, artifacts, canaries)
                    app.state.readiness_checks = runtime.readiness_checks()
                    yield
        finally:
            canaries.shutdown(wait=True)

    app = create_service_app(settings, title="ModelOps marketplace", lifespan=lifespan, overrides=overrides)
    app.include_router(api.router)
    return app
