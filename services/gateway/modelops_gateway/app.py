"""Composition root: settings, runtime (pool with the gateway's migrations, bus with the outbox relay, object
store, the consumers of training, model import, quantization, evaluation and router events), API keys with the first
admin key, the rate limiter, the upstream clients of the registry and the inference service, the reconciler of
dataset announcements, the job event feed, the console's recorder of every topic, and the HTTP app with every
feature's routes and the console at /ui."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from importlib.resources import files

import httpx
from fastapi import FastAPI
from modelops_contracts.catalog import (
    EVALUATION_EVENTS,
    MODEL_EVENTS,
    QUANTIZATION_EVENTS,
    ROUTER_EVENTS,
    TRAINING_EVENTS,
    USAGE_EVENTS,
)
from modelops_shared.bus.access import KafkaAccess
from modelops_shared.service import DependencyOverrides, Runtime, Subscription, create_service_app
from modelops_shared.service_tokens import ServiceIdentity

from .access import api as access_api
from .access.store import KeyStore
from .artifacts import api as artifacts_api
from .console import api as console_api
from .console.recorder import Recorder
from .datasets import api as datasets_api
from .datasets.announcer import reconciling
from .deployments import api as deployments_api
from .deps import Gateway
from .evaluation import api as evaluation_api
from .evaluation import handlers as evaluation_handlers
from .jobs import handlers as job_handlers
from .jobs.api import fine_tuning, streams, training
from .jobs.feed import JobFeed
from .marketplace import api as marketplace_api
from .models import api as models_api
from .models import handlers as model_handlers
from .quantization import api as quantization_api
from .quantization import handlers as quantization_handlers
from .rag import api as rag_api
from .registry_lookups import RegistryLookups
from .routers import api as routers_api
from .routers import handlers as router_handlers
from .settings import GatewaySettings
from .upstream import Upstream
from .usage import api as usage_api
from .usage import handlers as usage_handlers
from .usage.store import RATE_KEPT_S, TrainingTokenCost
from .web.idempotency import purge_expired
from .web.ratelimit import RateLimiter, RateLimitHeaders

MIGRATIONS = files("modelops_gateway") / "migrations"
DESCRIPTION = """The ModelOps platform's public API. Send an API key as `Authorization: Bearer <key>`; roles are
viewer < developer < approver < admin. Every key is rate limited (`RateLimit-*` headers, 429 with `Retry-After`).
Creating POSTs take an `Idempotency-Key`. Errors are RFC 9457 `application/problem+json`."""
ROUTERS = (
    access_api.router,
    artifacts_api.router,
    artifacts_api.reads,
    datasets_api.router,
    datasets_api.reads,
    datasets_api.files,
    training.router,
    streams.router,
    fine_tuning.router,
    deployments_api.router,
    deployments_api.openai,
    models_api.router,
    quantization_api.router,
    evaluation_api.router,
    rag_api.router,
    marketplace_api.router,
    routers_api.router,
    console_api.router,
    usage_api.router,
)


def create_app(settings: GatewaySettings | None = None, *, overrides: DependencyOverrides | None = None) -> FastAPI:
    """The gateway's app. `overrides` replace dependencies, FastAPI's way (`{get_inference: lambda: stand_in}`, for
    tests); what an override answers belongs to the caller, who closes it."""
    settings = settings or GatewaySettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The consumer group is the schema's name: each deployment (schema) follows every job event once.
        training_events = Subscription(TRAINING_EVENTS, settings.gateway_schema, job_handlers.project)
        # A group of its own: two topics in one group would rebalance each other at every start.
        model_events = Subscription(MODEL_EVENTS, f"{settings.gateway_schema}-models", model_handlers.project)
        quantization_events = Subscription(
            QUANTIZATION_EVENTS, f"{settings.gateway_schema}-quantization", quantization_handlers.project
        )
        evaluation_events = Subscription(
            EVALUATION_EVENTS, f"{settings.gateway_schema}-evaluation", evaluation_handlers.project
        )
        router_events = Subscription(ROUTER_EVENTS, f"{settings.gateway_schema}-routers", router_handlers.project)
        usage_events = Subscription(
            USAGE_EVENTS, f"{settings.gateway_schema}-usage", usage_handlers.projector(settings.gateway_prices)
        )
        async with AsyncExitStack() as stack:
            runtime = await stack.enter_async_context(
                Runtime.started(
                    settings,
                    schema=settings.gateway_schema,
                    migrations=MIGRATIONS,
                    subscriptions=(
                        training_events,
                        model_events,
                        quantization_events,
                        evaluation_events,
                        router_events,
                        usage_events,
                    ),
                )
            )
            feed = await stack.enter_async_context(JobFeed.running(runtime.pool, settings.gateway_stream_recheck_s))
            keys = KeyStore(runtime.pool)
            await keys.ensure_admin(settings.admin_key_file)
            await purge_expired(runtime.pool, settings.gateway_idempotency_ttl_s)
            limiter = RateLimiter(settings.redis_url.get_secret_value(), settings.gateway_default_rate_limit)
            stack.push_async_callback(limiter.close)
            identity = ServiceIdentity.from_settings(settings)
            registry = await stack.enter_async_context(
                Upstream(
                    "registry",
                    settings.registry_url,
                    _timeout(settings.registry_timeout_s),
                    label="registry",
                    identity=identity,
                )
            )
            inference = await stack.enter_async_context(
                Upstream(
                    "inference",
                    settings.inference_url,
                    _timeout(settings.inference_timeout_s),
                    label="inference service",
                    identity=identity,
                )
            )
            rag = await stack.enter_async_context(
                Upstream(
                    "rag", settings.rag_url, _timeout(settings.rag_timeout_s), label="rag service", identity=identity
                )
            )
            marketplace = await stack.enter_async_context(
                Upstream(
                    "marketplace",
                    settings.marketplace_url,
                    _timeout(settings.marketplace_timeout_s),
                    label="marketplace",
                    identity=identity,
                )
            )
            lookups = RegistryLookups(registry, settings.gateway_registry_cache_s)
            costs = TrainingTokenCost(runtime.pool, RATE_KEPT_S)
            slots = asyncio.Semaphore(settings.gateway_query_concurrency)
            app.state.gateway = Gateway(
                settings, runtime, keys, limiter, registry, inference, rag, marketplace, feed, lookups, costs, slots
            )
            app.state.readiness_checks = {**runtime.readiness_checks(), "redis": limiter.ready}
            await stack.enter_async_context(reconciling(runtime.pool, runtime.bus, settings))
            # A group of its own, reading every topic: the console's index of who sent what, when, in which trace.
            recorder = await stack.enter_async_context(
                Recorder.running(
                    runtime.pool,
                    KafkaAccess.of(settings.as_console()),
                    f"{settings.gateway_schema}-console",
                    settings.console_message_retention_s,
                )
            )
            app.state.readiness_checks["console-recorder"] = recorder.alive
            yield

    # Not `internal`: the gateway authenticates its callers by API key (web/auth.py).
    app = create_service_app(settings, title="ModelOps gateway", lifespan=lifespan, overrides=overrides, internal=False)
    app.description = DESCRIPTION
    app.add_middleware(RateLimitHeaders)
    for router in ROUTERS:
        app.include_router(router)
    app.mount("/ui", console_api.static, name="console")
    return app


def _timeout(total_s: float) -> httpx.Timeout:
    """A service that does not accept a connection within seconds is down: say so rather than wait `total_s`."""
    return httpx.Timeout(total_s, connect=5.0)
