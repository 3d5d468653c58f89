"""The marketplace through the gateway, against a real marketplace: a publisher lists an adapter of a tiny Llama;
installing it on that base is checked, deployed (the Deploy command names the base and the adapter) and counted;
installing an adapter of SmolLM2 on the tiny base is refused with the reasons, and nothing is deployed."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from deployables import promote
from helpers import TopicTap, make_lora, registered
from modelops_contracts import ArtifactKind, ArtifactSubmitted, Deploy, LineageRelation, ParentRef
from modelops_contracts.catalog import DEPLOYMENT_COMMANDS
from modelops_shared.artifact_upload import upload_directory
from modelops_shared.bus import Bus
from modelops_shared.settings import Settings
from modelops_shared.storage import open_store
from modelops_trainer.base_model import submit_base_model

from .conftest import RunningGateway
from .support import WAIT_S, Key


@pytest.fixture(scope="module")
async def deployment_tap(embedded_stack: Settings) -> AsyncIterator[TopicTap]:
    async with TopicTap(embedded_stack, DEPLOYMENT_COMMANDS) as tap:
        yield tap


@pytest.fixture(scope="module")
async def tiny_pair(
    embedded_stack: Settings,
    bus: Bus,
    registry: httpx.AsyncClient,
    base_model_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[str, str]:
    """A tiny Llama base and a real LoRA of it, both in staging (deployable); their ids."""
    store = open_store(embedded_stack.store_url, embedded_stack)
    base = await submit_base_model(
        store, base_model_dir, name=f"market-tiny-{uuid.uuid4().hex[:6]}", created_by="t", seed=0
    )
    await bus.publish(base)
    await registered(registry, base.artifact_id)
    await promote(registry, base.artifact_id)
    lora = make_lora(base_model_dir, tmp_path_factory.mktemp("tiny-lora"))
    adapter_id = f"market-tiny-lora-{uuid.uuid4().hex[:8]}"
    files = await upload_directory(store, lora, f"artifacts/{adapter_id}")
    await bus.publish(
        ArtifactSubmitted(
            artifact_id=adapter_id,
            kind=ArtifactKind.ADAPTER,
            name="tiny-lora",
            uri=store.url_of(f"artifacts/{adapter_id}"),
            files=files,
            parents=[ParentRef(artifact_id=base.artifact_id, relation=LineageRelation.TRAINED_FROM)],
            created_by="alice",
            metrics={"eval_loss": 1.0},
            metadata={"method": "sft", "base_model": base.artifact_id},
        )
    )
    await registered(registry, adapter_id)
    await promote(registry, adapter_id)
    return base.artifact_id, adapter_id


async def test_an_install_is_checked_deployed_and_counted(
    gateway: RunningGateway,
    keys: dict[str, Key],
    tiny_pair: tuple[str, str],
    smollm2_adapter: str,
    deployment_tap: TopicTap,
) -> None:
    base, adapter = tiny_pair
    async with gateway.client(gateway.admin_key) as admin, gateway.client(keys["developer"].secret) as developer:
        for listed in (adapter, smollm2_adapter):
            published = await admin.post("/v1/marketplace/listings", json={"artifact_id": listed, "title": listed})
            assert published.status_code == 201, published.text
        name = f"market-{uuid.uuid4().hex[:6]}"
        refused = await developer.post(
            f"/v1/marketplace/listings/{smollm2_adapter}/install", json={"name": name, "base_model": base}
        )
        assert refused.status_code == 422, refused.text
        assert refused.json()["type"].endswith("/incompatible")
        assert "modules_and_shapes" in refused.json()["detail"]
        installed = await developer.post(
            f"/v1/marketplace/listings/{adapter}/install", json={"name": name, "base_model": base}
        )
        assert installed.status_code == 202, installed.text
        deploy = await deployment_tap.first(name, Deploy)
        assert (deploy.base_model, deploy.adapters) == (base, [adapter])
        assert len(deployment_tap.of(name, Deploy)) == 1  # the refused install deployed nothing
        async with asyncio.timeout(WAIT_S):
            while (await developer.get(f"/v1/marketplace/listings/{adapter}")).json()["installs"] != 1:
                await asyncio.sleep(0.2)
        verdict = await developer.get(f"/v1/marketplace/listings/{adapter}/compatibility", params={"base_model": base})
        assert verdict.json()["compatible"], verdict.text
