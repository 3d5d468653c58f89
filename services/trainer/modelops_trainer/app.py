"""Composition root: settings, runtime (pool, bus, store, outbox relay), the artifact client, the cancel watcher,
the job consumer and the HTTP app (operational routes and the worker's current job)."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from importlib.resources import files
from typing import Any

from fastapi import FastAPI, Request
from modelops_shared.artifacts import ArtifactClient
from modelops_shared.service import Runtime, create_service_app

from .cancellation import CancelWatcher
from .consumer import JobConsumer
from .jobs import JobRunner
from .settings import TrainerSettings

MIGRATIONS = files("modelops_trainer") / "migrations"


def create_app(settings: TrainerSettings | None = None) -> FastAPI:
    settings = settings or TrainerSettings()
    worker = settings.trainer_worker_id or f"{socket.gethostname()}-{os.getpid()}"

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with (
            Runtime.started(settings, schema=settings.trainer_schema, migrations=MIGRATIONS) as runtime,
            ArtifactClient.from_settings(settings, settings.work_dir / "cache") as artifacts,
        ):
            # One thread: a worker trains one job at a time, and the event loop stays free for Kafka and HTTP.
            executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="training")
            runner = JobRunner(settings, runtime.store, runtime.bus, artifacts, executor)
            watcher = CancelWatcher(settings)
            consumer = JobConsumer(settings, runtime.pool, runtime.bus, runner, watcher, worker)
            await watcher.start()
            try:
                await consumer.start()
                try:
                    app.state.consumer = consumer
                    app.state.readiness_checks = runtime.readiness_checks()
                    yield
                finally:
                    await consumer.stop()
            finally:
                await watcher.stop()
                executor.shutdown(wait=True)

    app = create_service_app(settings, title="ModelOps trainer", lifespan=lifespan)

    @app.get("/v1/worker", tags=["trainer"])
    async def current_job(request: Request) -> dict[str, Any]:
        """This worker's name and the job it is training, if any."""
        consumer: JobConsumer | None = getattr(request.app.state, "consumer", None)
        job = consumer.current if consumer else None
        return {"worker": worker, "job_id": job.job_id if job else None}

    return app
