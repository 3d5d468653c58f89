"""Composition root: settings, runtime (pool with the gateway's migrations, bus with the outbox relay, object
store), API keys with the first admin key, the rate limiter, the registry client, and the HTTP app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.resources import files

from fastapi import FastAPI
from modelops_shared.service import Runtime, create_service_app

from . import api_keys, artifacts
from .context import Gateway
from .idempotency import purge_expired
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
        async with Runtime.started(settings, schema=settings.gateway_schema, migrations=MIGRATIONS) as runtime:
            keys = KeyStore(runtime.pool)
            await keys.ensure_admin(settings.admin_key_file)
            await purge_expired(runtime.pool, settings.gateway_idempotency_ttl_s)
            limiter = RateLimiter(settings.redis_url.get_secret_value(), settings.gateway_default_rate_limit)
            registry = RegistryClient(settings.registry_url, settings.registry_timeout_s)
            app.state.gateway = Gateway(settings, runtime, keys, limiter, registry)
            app.state.readiness_checks = {**runtime.readiness_checks(), "redis": limiter.ready}
            try:
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
    return app
