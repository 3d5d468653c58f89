"""The marketplace's world for one test session: marketplace settings with a schema of their own, the marketplace on
a real port, and clients acting for users (as the gateway does, in its service token)."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from helpers import ActingFor
from modelops_marketplace.app import create_app
from modelops_marketplace.settings import MarketplaceSettings
from modelops_shared.settings import Settings
from servers import serving

Acting = Callable[..., httpx.AsyncClient]


@pytest.fixture(scope="session")
def marketplace_settings(embedded_stack: Settings, registry_url: str) -> Iterator[MarketplaceSettings]:
    work_dir = Path(tempfile.mkdtemp(prefix="modelops-marketplace-"))
    yield MarketplaceSettings(
        **embedded_stack.model_dump(exclude={"service_name", "registry_url"}),
        registry_url=registry_url,
        marketplace_schema=f"market_{uuid.uuid4().hex[:8]}",
        marketplace_work_dir=work_dir,
    )
    shutil.rmtree(work_dir, ignore_errors=True)


@pytest.fixture(scope="module")
async def market(marketplace_settings: MarketplaceSettings) -> AsyncIterator[Acting]:
    """The marketplace on a real port; `market(user, role)` is a client acting for that user."""
    clients: list[httpx.AsyncClient] = []
    async with serving(create_app(marketplace_settings)) as url:

        def acting(user: str, role: str = "developer") -> httpx.AsyncClient:
            client = httpx.AsyncClient(base_url=url, timeout=300, auth=ActingFor("marketplace", user, role))
            clients.append(client)
            return client

        yield acting
        for client in clients:
            await client.aclose()
