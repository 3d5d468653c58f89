"""A gateway served by uvicorn in this process on a real local port, against the embedded stack with its own schema:
it reaches the session's registry over HTTP, as it does in production, and a rag service and a marketplace of its own
on other ports.
Also a viewer and a developer key per module, and the job tests' world."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from consumer_groups import skip_history
from fastapi import FastAPI
from modelops_contracts.catalog import RAG_COMMANDS
from modelops_gateway.app import create_app as create_gateway
from modelops_gateway.deps import Gateway, get_inference
from modelops_gateway.settings import GatewaySettings
from modelops_gateway.upstream import Upstream
from modelops_marketplace.app import create_app as create_marketplace
from modelops_marketplace.settings import MarketplaceSettings
from modelops_rag.app import create_app as create_rag
from modelops_rag.settings import RagSettings
from modelops_shared.bus import Bus
from modelops_shared.service_tokens import ServiceIdentity
from modelops_shared.settings import Settings
from modelops_shared.storage import ObjectStore
from servers import serving

from .inference_support import InferenceStandIn
from .jobs_support import JobWorld, job_world
from .support import Key, KeyMaker


@dataclass
class RunningGateway:
    url: str
    app: FastAPI
    settings: GatewaySettings
    admin_key: str
    keys: KeyMaker
    inference: InferenceStandIn

    @property
    def state(self) -> Gateway:
        gateway: Gateway = self.app.state.gateway
        return gateway

    @property
    def store(self) -> ObjectStore:
        return self.state.runtime.store

    def client(self, key: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=30)


def gateway_settings(
    embedded_stack: Settings,
    state_dir: Path,
    registry_url: str,
    rag_url: str = "http://127.0.0.1:9",
    marketplace_url: str = "http://127.0.0.1:9",
) -> GatewaySettings:
    return GatewaySettings(
        **{
            **embedded_stack.model_dump(exclude={"service_name"}),
            "state_dir": state_dir,
            "gateway_schema": f"gw_{uuid.uuid4().hex[:8]}",
            "registry_url": registry_url,
            "rag_url": rag_url,
            "marketplace_url": marketplace_url,
        }
    )


@pytest.fixture(scope="package")
async def gateway(
    embedded_stack: Settings, registry_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[RunningGateway]:
    suffix = uuid.uuid4().hex[:8]
    rag_settings = RagSettings(
        **embedded_stack.model_dump(exclude={"service_name", "registry_url"}),
        registry_url=registry_url,
        rag_schema=f"rag_{suffix}",
        rag_group=f"rag-{suffix}",
        rag_work_dir=tmp_path_factory.mktemp("rag-work"),
    )
    await skip_history(embedded_stack, rag_settings.rag_group, RAG_COMMANDS)  # earlier tests' index jobs are theirs
    marketplace_settings = MarketplaceSettings(
        **embedded_stack.model_dump(exclude={"service_name", "registry_url"}),
        registry_url=registry_url,
        marketplace_schema=f"market_{suffix}",
        marketplace_work_dir=tmp_path_factory.mktemp("marketplace-work"),
    )
    async with (
        serving(create_rag(rag_settings)) as rag_url,
        serving(create_marketplace(marketplace_settings)) as marketplace_url,
    ):
        state = tmp_path_factory.mktemp("gateway-state")
        settings = gateway_settings(embedded_stack, state, registry_url, rag_url, marketplace_url)
        async with _gateway(settings) as running:
            yield running


@asynccontextmanager
async def _gateway(settings: GatewaySettings) -> AsyncIterator[RunningGateway]:
    stand_in = InferenceStandIn()
    timeout = httpx.Timeout(settings.inference_timeout_s, connect=5.0)
    async with Upstream(
        "inference",
        "http://inference",
        timeout,
        label="inference service",
        identity=ServiceIdentity.from_settings(settings),
        transport=stand_in,
    ) as inference:
        app = create_gateway(settings, overrides={get_inference: lambda: inference})
        async with serving(app) as url:
            admin_key = settings.admin_key_file.read_text().strip()
            async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {admin_key}"}) as admin:
                yield RunningGateway(url, app, settings, admin_key, KeyMaker(admin), stand_in)


@pytest.fixture(scope="module")
async def keys(gateway: RunningGateway) -> dict[str, Key]:
    """A viewer and a developer key, made once per module."""
    return {role: await gateway.keys.make(role) for role in ("viewer", "developer")}


@pytest.fixture(scope="module")
async def world(gateway: RunningGateway, bus: Bus) -> AsyncIterator[JobWorld]:
    async with job_world(gateway, bus) as world:
        yield world
