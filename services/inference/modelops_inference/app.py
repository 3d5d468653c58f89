"""Composition root: settings, runtime (pool, bus with the deployment and artifact consumers, outbox relay), the
verified artifact client, the deployments (restored from the registry, and their artifacts re-checked for revocation,
in the background), and the HTTP app."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from modelops_contracts import DeploymentFailed
from modelops_contracts.catalog import DEPLOYMENT_COMMANDS, REGISTRY_ARTIFACTS
from modelops_shared.artifacts import ArtifactClient
from modelops_shared.bus import enqueue
from modelops_shared.bus.access import KafkaAccess
from modelops_shared.bus.groups import start_new_group_at_end
from modelops_shared.service import DependencyOverrides, Runtime, Subscription, create_service_app

from . import api
from .deployments import Deployments
from .deps import Inference
from .handlers import Handlers
from .restore import restore
from .revocations import rechecking
from .settings import InferenceSettings
from .usage import reporting


def create_app(settings: InferenceSettings | None = None, *, overrides: DependencyOverrides | None = None) -> FastAPI:
    """The inference app; `overrides` replace its dependencies (`deps.get_inference`) with a test's fakes."""
    settings = settings or InferenceSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with ArtifactClient.from_settings(settings, settings.work_dir / "cache") as artifacts:
            deployments = Deployments(settings, artifacts)
            handlers = Handlers(deployments)
            # Groups of this replica's own, so that every replica obeys every command. A new replica starts at the
            # topics' ends: the restore below asks the registry what to serve, and fetching re-checks revocations.
            subscriptions = (
                Subscription(DEPLOYMENT_COMMANDS, settings.group("commands"), handlers.command),
                Subscription(REGISTRY_ARTIFACTS, settings.group("artifacts"), handlers.artifact),
            )
            for subscription in subscriptions:
                await start_new_group_at_end(KafkaAccess.of(settings), subscription.group, subscription.topic)
            try:
                async with Runtime.started(
                    settings, schema=settings.inference_schema, subscriptions=subscriptions
                ) as runtime:
                    app.state.inference = Inference(settings, deployments)
                    app.state.readiness_checks = runtime.readiness_checks()
                    tasks = _background(settings, deployments, runtime)
                    idle_s = settings.inference_idle_unload_s
                    try:
                        async with (
                            handlers.working(runtime.pool, runtime.bus),
                            deployments.unloading_idle(idle_s) if idle_s else contextlib.nullcontext(),
                        ):
                            yield
                    finally:
                        for task in tasks:
                            task.cancel()
                            with contextlib.suppress(asyncio.CancelledError):
                                await task
            finally:
                await deployments.close()

    app = create_service_app(settings, title="ModelOps inference", lifespan=lifespan, overrides=overrides)
    app.include_router(api.router)
    app.include_router(api.routing)
    return app


def _background(settings: InferenceSettings, deployments: Deployments, runtime: Runtime) -> list[asyncio.Task[Any]]:
    """The restore from the registry, the periodic revocation check and usage report, as the settings ask."""
    tasks: list[asyncio.Task[Any]] = []
    if settings.inference_restore:
        restoring = restore(deployments, deployments.registry, runtime.pool, runtime.bus)
        tasks.append(asyncio.create_task(restoring, name="restore"))
    if settings.inference_revocation_check_s > 0:

        async def announce(failed: DeploymentFailed) -> None:
            async with runtime.pool.acquire() as conn, conn.transaction():
                await enqueue(conn, runtime.bus, failed)

        checking = rechecking(deployments, deployments.registry, announce, settings.inference_revocation_check_s)
        tasks.append(asyncio.create_task(checking, name="revocation-check"))
    if settings.inference_usage_every_s > 0:
        usage = reporting(runtime.pool, runtime.bus, settings.inference_replica, settings.inference_usage_every_s)
        tasks.append(asyncio.create_task(usage, name="usage-report"))
    return tasks
