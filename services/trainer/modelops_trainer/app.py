"""Composition root: settings, runtime (pool, bus, store, outbox relay), the artifact client, the model importer,
the job consumer and the HTTP app; and what the `bootstrap-base` command opens."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import tempfile
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from modelops_contracts import ArtifactKind
from modelops_contracts.catalog import MODEL_COMMANDS
from modelops_shared.artifacts import ArtifactClient, ArtifactUnavailable
from modelops_shared.bus import Bus
from modelops_shared.jobs import JobConsumer
from modelops_shared.service import DependencyOverrides, Runtime, Subscription, create_service_app
from modelops_shared.storage import open_store

from . import api
from .base_model import build_base_model, submit_base_model
from .deps import Trainer
from .imports import Importer
from .jobs import TRAINING_JOBS, JobRunner
from .settings import TrainerSettings

MIGRATIONS = files("modelops_trainer") / "migrations"
REGISTRY_WAIT_S = 60.0


def create_app(settings: TrainerSettings | None = None, *, overrides: DependencyOverrides | None = None) -> FastAPI:
    """The trainer's app; `overrides` replace its dependencies (`deps.get_trainer`) with a test's fakes."""
    settings = settings or TrainerSettings()
    worker = settings.trainer_worker_id or f"{socket.gethostname()}-{os.getpid()}"

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with ArtifactClient.from_settings(settings, settings.work_dir / "cache") as artifacts:

            def imports(runtime: Runtime) -> tuple[Subscription, ...]:
                importer = Importer(runtime.pool, runtime.bus, runtime.store, artifacts, settings.work_dir / "imports")
                return (Subscription(MODEL_COMMANDS, settings.trainer_imports_group, importer.handle),)

            async with (
                Runtime.started(
                    settings, schema=settings.trainer_schema, migrations=MIGRATIONS, subscriptions=imports
                ) as runtime,
                _serving(app, settings, runtime, artifacts, worker),
            ):
                yield

    app = create_service_app(settings, title="ModelOps trainer", lifespan=lifespan, overrides=overrides)
    app.include_router(api.router)
    return app


@asynccontextmanager
async def _serving(
    app: FastAPI, settings: TrainerSettings, runtime: Runtime, artifacts: ArtifactClient, worker: str
) -> AsyncIterator[None]:
    """The job consumer (with its cancel watcher), for as long as the app runs."""
    # One thread: a worker trains one job at a time, and the event loop stays free for Kafka and HTTP.
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="training")
    runner = JobRunner(settings, runtime.store, runtime.bus, artifacts, executor)
    consumer = JobConsumer(
        settings,
        runtime.pool,
        runtime.bus,
        TRAINING_JOBS,
        runner.run,
        group=settings.trainer_group,
        worker=worker,
        max_attempts=settings.trainer_max_job_attempts,
    )
    try:
        await consumer.start()
        try:
            app.state.trainer = Trainer(worker=worker, consumer=consumer)
            app.state.readiness_checks = {**runtime.readiness_checks(), "job_consumer": consumer.alive}
            yield
        finally:
            await consumer.stop()
    finally:
        executor.shutdown(wait=True)


async def bootstrap_base(settings: TrainerSettings, *, seed: int, name: str, wait: bool) -> int:
    """Build the tiny base model from `seed`, store and submit it; with `wait`, until the registry has decided."""
    with tempfile.TemporaryDirectory(prefix="modelops-base-") as scratch:
        await asyncio.to_thread(build_base_model, Path(scratch), seed)
        store = open_store(settings.store_url, settings)
        submission = await submit_base_model(store, Path(scratch), name=name, created_by="bootstrap", seed=seed)
    bus = Bus(settings)
    await bus.start()
    try:
        await bus.publish(submission)
    finally:
        await bus.stop()
    print(f"submitted base_model {submission.artifact_id} ({name}, seed {seed})")
    if not wait:
        return 0
    async with ArtifactClient.from_settings(settings, settings.work_dir / "cache") as client:
        try:
            record = await client.wait_registered(submission.artifact_id, ArtifactKind.BASE_MODEL, REGISTRY_WAIT_S)
        except ArtifactUnavailable as error:
            print(f"the registry rejected it: {error}", file=sys.stderr)
            return 1
    print(f"registered as {record['name']} version {record['version']}")
    return 0
