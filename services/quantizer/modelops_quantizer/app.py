"""Composition root: settings, runtime (pool, bus, store, outbox relay), the artifact client, the job consumer and
the HTTP app."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from importlib.resources import files

from fastapi import FastAPI
from modelops_shared.artifacts import ArtifactClient
from modelops_shared.jobs import JobConsumer
from modelops_shared.service import DependencyOverrides, Runtime, create_service_app

from . import api
from .deps import Quantizer
from .jobs import QUANTIZATION_JOBS, JobRunner
from .settings import QuantizerSettings

MIGRATIONS = files("modelops_quantizer") / "migrations"


def create_app(settings: QuantizerSettings | None = None, *, overrides: DependencyOverrides | None = None) -> FastAPI:
    """The quantizer's app; `overrides` replace its dependencies (`deps.get_quantizer`) with a test's fakes."""
    settings = settings or QuantizerSettings()
    worker = settings.quantizer_worker_id or f"{socket.gethostname()}-{os.getpid()}"

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # One thread: a worker quantizes one job at a time, and the event loop stays free for Kafka and HTTP.
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="quantizing")
        try:
            async with (
                ArtifactClient.from_settings(settings, settings.work_dir / "cache") as artifacts,
                Runtime.started(settings, schema=settings.quantizer_schema, migrations=MIGRATIONS) as runtime,
            ):
                runner = JobRunner(settings, runtime.store, runtime.bus, artifacts, executor)
                consumer = JobConsumer(
                    settings,
                    runtime.pool,
                    runtime.bus,
                    QUANTIZATION_JOBS,
                    runner.run,
                    group=settings.quantizer_group,
                    worker=worker,
                    max_attempts=settings.quantizer_max_job_attempts,
                )
                await consumer.start()
                try:
                    app.state.quantizer = Quantizer(worker=worker, consumer=consumer)
                    app.state.readiness_checks = {**runtime.readiness_checks(), "job_consumer": consumer.alive}
                    yield
                finally:
                    await consumer.stop()
        finally:
            executor.shutdown(wait=True)

    app = create_service_app(settings, title="ModelOps quantizer", lifespan=lifespan, overrides=overrides)
    app.include_router(api.router)
    return app
