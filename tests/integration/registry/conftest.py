"""A registry running in-process against the embedded stack, with its own schema, consumer group and keys."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI
from helpers import service_auth
from modelops_registry.app import create_app
from modelops_registry.settings import RegistrySettings
from modelops_shared.bus import Bus
from modelops_shared.settings import Settings
from modelops_shared.storage import open_store

from .support import Submitter


@dataclass
class RunningRegistry:
    app: FastAPI
    client: httpx.AsyncClient
    settings: RegistrySettings
    submitter: Submitter


@pytest.fixture(scope="module")
async def registry(
    embedded_stack: Settings, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[RunningRegistry]:
    schema = f"reg_{uuid.uuid4().hex[:8]}"
    settings = RegistrySettings(
        **embedded_stack.model_dump(exclude={"service_name"}),
        registry_schema=schema,
        registry_keys_dir=tmp_path_factory.mktemp("keys"),
    )
    app = create_app(settings)
    bus = Bus(settings.model_copy(update={"service_name": "registry-test"}))
    await bus.start()
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        auth = service_auth("registry")
        async with httpx.AsyncClient(transport=transport, base_url="http://registry", auth=auth) as client:
            yield RunningRegistry(app, client, settings, Submitter(bus, open_store(settings.store_url, settings)))
    await bus.stop()
