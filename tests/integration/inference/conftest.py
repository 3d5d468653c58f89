"""The inference service's world for one test session, beside the shared registry, bus and registered base model: two
LoRA adapters of it made and registered, and the inference app serving on a real port."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from helpers import service_auth
from modelops_inference.app import create_app as create_inference
from modelops_shared.bus import Bus
from modelops_shared.settings import Settings
from servers import serving

from .support import inference_settings, make_adapter, submit_adapter


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory, base_model_dir: Path) -> Path:
    """Two adapters of the base model made locally (adapter-1, adapter-2): deployed, and for reference generations."""
    root = tmp_path_factory.mktemp("adapters")
    for seed in (1, 2):
        make_adapter(base_model_dir, root / f"adapter-{seed}", seed)
    return root


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
    async with (
        serving(create_inference(settings)) as url,
        httpx.AsyncClient(base_url=url, timeout=60, auth=service_auth("inference")) as client,
    ):
        yield client
