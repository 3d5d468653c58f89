"""Composition root: settings, runtime (pool with the gateway's migrations, bus with the outbox relay, object
store, the training events consumer), API keys with the first admin key, the rate limiter, the registry client, the
reconciler of dataset announcements, the job event feed, and the HTTP app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.resources import files

from fastapi import FastAPI
from modelops_contracts.catalog import TRAINING_EVENTS
from modelops_shared.service import Runtime, Subscription, create_service_app

from . import (
    api_keys,
    artifacts,
    dataset_api,
    deployments,
    fine_tuning,
    job_streams,
    openai_files,
    training_jobs,
)
from .context import Gateway
from .dataset_announcer import reconciling
from .idempotency import purge_expired
from .jobs import JobFeed, RegistryLookups, project
from .keys import KeyStore
from .ratelimit import RateLimiter, RateLimitHeaders
from .settings import GatewaySettings
from .upstream import RegistryClient

MIGRATIONS = files("modelops_gateway") / "migrations"
DESCRIPTION = """The ModelOps platform's public API. Send an API key as `Authorization: Bearer <key>`; roles are
viewer < developer < approver < admin. Every key is rate limited (`RateLimit-*` headers, 429 with `Retry-After`).
Creating POSTs take an `Idempotency-Key`. Errors are RFC 9457 `application/problem+json`."""


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or GatewaySettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The consumer group is the schema's name: each deployment (schema) follows every job event once.
        training_events = Subscription(TRAINING_EVENTS, settings.gateway_schema, project)
        async with (
            Runtime.started(
                settings, schema=settings.gateway_schema, migrations=MIGRATIONS, subscriptions=(training_events,)
            ) as runtime,
            JobFeed.running(runtime.pool, settings.gateway_stream_recheck_s) as feed,
        ):
            keys = KeyStore(runtime.pool)
            await keys.ensure_admin(settings.admin_key_file)
            await purge_expired(runtime.pool, settings.gateway_idempotency_ttl_s)
            limiter = RateLimiter(settings.redis_url.get_secret_value(), settings.gateway_default_rate_limit)
            registry = RegistryClient(settings.registry_url, settings.registry_timeout_s)
            lookups = RegistryLookups(registry, settings.gateway_registry_cache_s)
            app.state.gateway = Gateway(settings, runtime, keys, limiter, registry, feed, lookups)
            app.state.readiness_checks = {**runtime.readiness_checks(), "redis": limiter.ready}
            try:
                async with reconciling(runtime, settings):
                    yield
            finally:
                await registry.aclose()
                await limiter.close()

    app = create_service_app(settings, title="ModelOps gateway", lifespan=lifespan)
    app.description = DESCRIPTION
    app.add_middleware(RateLimitHeaders)
    app.include_router(api_keys.router)
    app.include_router(artifacts.router)
    app.include_router(artifacts.reads)
    app.include_router(dataset_api.router)
    app.include_router(dataset_api.reads)
    app.include_router(openai_files.router)
    app.include_router(training_jobs.router)
    app.include_router(job_streams.router)
    app.include_router(fine_tuning.router)
    app.include_router(deployments.router)
    app.include_router(deployments.openai)
    return app
