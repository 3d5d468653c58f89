"""Composition root: settings, runtime (pool, bus, store, outbox relay, the projection of indexing events), the
artifact client, embedders, retriever, the inference client, the index job consumer and the HTTP app."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from importlib.resources import files

import httpx
from fastapi import FastAPI
from modelops_contracts.catalog import RAG_EVENTS, REGISTRY_ARTIFACTS
from modelops_shared.artifacts import ArtifactClient
from modelops_shared.jobs import JobConsumer
from modelops_shared.service import DependencyOverrides, Runtime, Subscription, create_service_app
from modelops_shared.service_tokens import ServiceIdentity

from . import api, handlers
from .deps import Rag
from .embedding import Embedders
from .indexing import INDEX_JOBS, JobRunner
from .retrieval import Retriever
from .settings import RagSettings

MIGRATIONS = files("modelops_rag") / "migrations"


def create_app(settings: RagSettings | None = None, *, overrides: DependencyOverrides | None = None) -> FastAPI:
    """The rag service's app; `overrides` replace its dependencies (`deps.get_rag`) with a test's fakes."""
    settings = settings or RagSettings()
    worker = settings.rag_worker_id or f"{socket.gethostname()}-{os.getpid()}"
    subscriptions = (
        Subscription(RAG_EVENTS, f"{settings.rag_schema}-events", handlers.project),
        Subscription(REGISTRY_ARTIFACTS, f"{settings.rag_schema}-registry", handlers.registered),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # One thread for index jobs: a worker indexes one collection at a time; searches use threads of their own.
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="indexing")
        try:
            async with (
                ArtifactClient.from_settings(settings, settings.work_dir / "cache") as artifacts,
                Runtime.started(
                    settings, schema=settings.rag_schema, migrations=MIGRATIONS, subscriptions=subscriptions
                ) as runtime,
                httpx.AsyncClient(
                    base_url=settings.inference_url,
                    auth=ServiceIdentity.from_settings(settings).auth("inference"),
                    timeout=settings.rag_request_timeout_s,
                ) as inference,
            ):
                embedders = Embedders(settings, artifacts)
                runner = JobRunner(settings, runtime.pool, runtime.store, runtime.bus, embedders, executor)
                consumer = JobConsumer(
                    settings,
                    runtime.pool,
                    runtime.bus,
                    INDEX_JOBS,
                    runner.run,
                    group=settings.rag_group,
                    worker=worker,
                    max_attempts=settings.rag_max_job_attempts,
                )
                await consumer.start()
                try:
                    retriever = Retriever(settings, artifacts, embedders)
                    app.state.rag = Rag(settings, runtime, artifacts, retriever, inference, consumer)
                    app.state.readiness_checks = {**runtime.readiness_checks(), "job_consumer": consumer.alive}
                    yield
                finally:
                    await consumer.stop()
        finally:
            executor.shutdown(wait=True)

    app = create_service_app(settings, title="ModelOps RAG", lifespan=lifespan, overrides=overrides)
    app.include_router(api.router)
    return app
