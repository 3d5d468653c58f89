"""The inference service's world for one test session: the embedded stack, a registry on a real port, the tiny base
model and two LoRA adapters registered in it, and the inference app serving on a real port."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from modelops_inference.app import create_app as create_inference
from modelops_shared.bus import Bus
from modelops_shared.settings import Settings
from modelops_shared.storage import open_store
from modelops_trainer.base_model import build_base_model, submit_base_model
from servers import registry_serving, serving

from .support import WAIT_S, inference_settings, make_adapter, skip_command_history, submit_adapter


@pytest.fixture(scope="session")
async def registry_url(embedded_stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    async with registry_serving(embedded_stack, tmp_path_factory.mktemp("registry-keys")) as url:
        yield url


@pytest.fixture(scope="session")
async def registry(registry_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=registry_url, timeout=30) as client:
        yield client


@pytest.fixture(scope="session")
async def bus(embedded_stack: Settings) -> AsyncIterator[Bus]:
    bus = Bus(embedded_stack.model_copy(update={"service_name": "gateway-stand-in"}))
    await bus.start()
    yield bus
    await bus.stop()


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Local copies of the base model and adapters, for reference generations."""
    root = tmp_path_factory.mktemp("models")
    build_base_model(root / "base", 0)
    for seed in (1, 2):
        make_adapter(root / "base", root / f"adapter-{seed}", seed)
    return root


@pytest.fixture(scope="session")
async def base_model(embedded_stack: Settings, bus: Bus, registry: httpx.AsyncClient, model_dir: Path) -> str:
    store = open_store(embedded_stack.store_url, embedded_stack)
    submission = await submit_base_model(store, model_dir / "base", name="tiny-llama", created_by="bootstrap", seed=0)
    await bus.publish(submission)
    async with asyncio.timeout(WAIT_S):
        while (await registry.get(f"/v1/artifacts/{submission.artifact_id}")).status_code != 200:
            await asyncio.sleep(0.1)
    return submission.artifact_id


@pytest.fixture(scope="session")
async def adapters(
    embedded_stack: Settings, bus: Bus, registry: httpx.AsyncClient, base_model: str, model_dir: Path
) -> list[str]:
    """Two registered adapters (seeds 1 and 2) of the base model; their artifact ids."""
    return [
        await submit_adapter(embedded_stack, bus, registry, model_dir / f"adapter-{seed}", base_model, f"lora-{seed}")
        for seed in (1, 2)
    ]


@pytest.fixture(scope="session")
async def inference(embedded_stack: Settings, registry_url: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = inference_settings(embedded_stack, registry_url)
    await skip_command_history(settings)
    async with serving(create_inference(settings)) as url, httpx.AsyncClient(base_url=url, timeout=60) as client:
        yield client
