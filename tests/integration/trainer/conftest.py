"""The trainer's world for one test session: the embedded stack, a registry on a real port (workers in other
processes reach it), the bootstrap base model registered in it, an event tap, and trainer settings whose consumer
group and schema every worker of the session shares (as replicas do)."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from modelops_shared.bus import Bus
from modelops_shared.settings import Settings
from modelops_shared.storage import open_store
from modelops_trainer.base_model import build_base_model, submit_base_model
from modelops_trainer.settings import TrainerSettings
from servers import registry_serving

from .support import WAIT_S, EventTap


@pytest.fixture(scope="session")
async def registry_url(embedded_stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    async with registry_serving(embedded_stack, tmp_path_factory.mktemp("registry-keys")) as url:
        yield url


@pytest.fixture(scope="session")
async def registry(registry_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=registry_url, timeout=30) as client:
        yield client


@pytest.fixture(scope="session")
def trainer_settings(embedded_stack: Settings, registry_url: str) -> Iterator[TrainerSettings]:
    suffix = uuid.uuid4().hex[:8]
    work_dir = Path(tempfile.mkdtemp(prefix="modelops-trainer-"))
    yield TrainerSettings(
        **embedded_stack.model_dump(exclude={"service_name", "registry_url"}),
        registry_url=registry_url,
        trainer_schema=f"trainer_{suffix}",
        trainer_group=f"trainer-{suffix}",
        # Not under pytest's tmp root: worker subprocesses of the session share it.
        trainer_work_dir=work_dir,
        trainer_checkpoint_every_steps=4,
        trainer_progress_every_steps=2,
    )
    shutil.rmtree(work_dir, ignore_errors=True)


@pytest.fixture(scope="session")
async def bus(embedded_stack: Settings) -> AsyncIterator[Bus]:
    bus = Bus(embedded_stack.model_copy(update={"service_name": "gateway-stand-in"}))
    await bus.start()
    yield bus
    await bus.stop()


@pytest.fixture(scope="session")
async def events(embedded_stack: Settings, bus: Bus) -> AsyncIterator[EventTap]:
    tap = EventTap(embedded_stack)
    await tap.start()
    yield tap
    await tap.stop()


@pytest.fixture(scope="session")
async def base_model(embedded_stack: Settings, bus: Bus, registry: httpx.AsyncClient) -> str:
    """The bootstrap tiny Llama, stored, submitted and registered; its artifact id."""
    with tempfile.TemporaryDirectory() as scratch:
        await asyncio.to_thread(build_base_model, Path(scratch), 0)
        store = open_store(embedded_stack.store_url, embedded_stack)
        submission = await submit_base_model(store, Path(scratch), name="tiny-llama", created_by="bootstrap", seed=0)
    await bus.publish(submission)
    async with asyncio.timeout(WAIT_S):
        while (await registry.get(f"/v1/artifacts/{submission.artifact_id}")).status_code != 200:
            await asyncio.sleep(0.1)
    return submission.artifact_id
