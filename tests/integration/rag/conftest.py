"""The rag service's world for one test session (the integration conftest registers all-MiniLM-L6-v2): rag settings
with a schema and consumer group of their own, a rag service on a real port, and clients acting for users (as the
gateway does, in its service token)."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from consumer_groups import skip_history
from helpers import ActingFor
from modelops_contracts.catalog import RAG_COMMANDS
from modelops_rag.app import create_app
from modelops_rag.settings import RagSettings
from modelops_shared.settings import Settings
from servers import serving


@pytest.fixture(scope="session")
async def rag_settings(embedded_stack: Settings, registry_url: str) -> AsyncIterator[RagSettings]:
    suffix = uuid.uuid4().hex[:8]
    work_dir = Path(tempfile.mkdtemp(prefix="modelops-rag-"))
    settings = RagSettings(
        **embedded_stack.model_dump(exclude={"service_name", "registry_url"}),
        registry_url=registry_url,
        rag_schema=f"rag_{suffix}",
        rag_group=f"rag-{suffix}",
        rag_work_dir=work_dir,
    )
    await skip_history(embedded_stack, settings.rag_group, RAG_COMMANDS)  # earlier tests' index jobs are theirs
    yield settings
    shutil.rmtree(work_dir, ignore_errors=True)


Acting = Callable[..., httpx.AsyncClient]


@pytest.fixture(scope="module")
async def rag(rag_settings: RagSettings, minilm: str) -> AsyncIterator[Acting]:
    """The rag service on a real port; `rag(user, role)` is a client acting for that user."""
    clients: list[httpx.AsyncClient] = []
    async with serving(create_app(rag_settings)) as url:

        def acting(user: str, role: str = "developer") -> httpx.AsyncClient:
            client = httpx.AsyncClient(base_url=url, timeout=120, auth=ActingFor("rag", user, role))
            clients.append(client)
            return client

        yield acting
        for client in clients:
            await client.aclose()
