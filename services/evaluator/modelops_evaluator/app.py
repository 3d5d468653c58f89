"""Composition root: settings, runtime (pool, bus, store, outbox relay), the artifact client, the inference client,
the job consumer and the HTTP app."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from importlib.resources import files

import httpx
from fastapi import FastAPI
from modelops_shared.artifacts import ArtifactClient
from modelops_shared.jobs import JobConsumer
from modelops_shared.service import DependencyOverrides, Runtime, create_service_app
from modelops_shared.service_tokens import ServiceIdentity

from . import api
from .deps import Evaluator
from .jobs import EVALUATION_JOBS, JobRunner
from .settings import EvaluatorSettings

MIGRATIONS = files("modelops_evaluator") / "migrations"


def create_app(settings: EvaluatorSettings | None = None, *, overrides: DependencyOverrides | None = None) -> FastAPI:
    """The evaluator's app; `overrides` replace its dependencies (`deps.get_evaluator`) with a test's fakes."""
    settings = settings or EvaluatorSettings()
    worker = settings.evaluator_worker_id or f"{socket.gethostname()}-{os.getpid()}"

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # One thread: a worker runs one model at a time, and the event loop stays free for Kafka and HTTP.
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="evaluating")
        try:
            async with (
                ArtifactClient.from_settings(settings, settings.work_dir / "cache") as artifacts,
                Runtime.started(settings, schema=settings.evaluator_schema, migrations=MIGRATIONS) as runtime,
                httpx.AsyncClient(
                    base_url=settings.inference_url,
                    auth=ServiceIdentity.from_settings(settings).auth("inference"),
                    timeout=settings.evaluator_request_timeout_s,
                    limits=httpx.Limits(max_connections=settings.evaluator_concurrency),
                ) as inference,
            ):
                runner = JobRunner(settings, runtime.store, runtime.bus, artifacts, executor, inference)
                consumer = JobConsumer(
                    settings,
                    runtime.pool,
                    runtime.bus,
                    EVALUATION_JOBS,
                    runner.run,
                    group=settings.evaluator_group,
                    worker=worker,
                    max_attempts=settings.evaluator_max_job_attempts,
                )
                await consumer.start()
                try:
                    app.state.evaluator = Evaluator(worker=worker, consumer=consumer)
                    app.state.readiness_checks = {**runtime.readiness_checks(), "job_consumer": consumer.alive}
                    yield
                finally:
                    await consumer.stop()
        finally:
            executor.shutdown(wait=True)

    app = create_service_app(settings, title="ModelOps evaluator", lifespan=lifespan, overrides=overrides)
    app.include_router(api.router)
    return app
