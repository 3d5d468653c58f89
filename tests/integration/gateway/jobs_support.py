"""Helpers for the gateway's job tests: a registered base model and datasets, taps on training.commands.v1 and
deployments.commands.v1, a bus to publish training events as a trainer would, and a Server-Sent Events reader."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from helpers import TopicTap, outbox_sent, registered
from modelops_contracts import DatasetSchema, DatasetVersionCreated
from modelops_contracts.catalog import DEPLOYMENT_COMMANDS, TRAINING_COMMANDS
from modelops_shared.bus import Bus

from .support import WAIT_S, Key, import_artifact, sample_files


@dataclass
class JobWorld:
    """What job tests share: keys, a registered base model and a chat and a preference dataset, the taps, a bus."""

    developer: Key
    viewer: Key
    base_model_id: str
    base_model_name: str
    chat_dataset: str
    preference_dataset: str
    commands: TopicTap
    bus: Bus
    deployments: TopicTap

    async def all_commands_read(self, gateway: Any) -> None:
        """Returns once every command the gateway has staged so far has been published and read by both taps: after
        it, a command that is not in a tap was never sent."""
        await outbox_sent(gateway.state.runtime.pool)
        await self.commands.caught_up()
        await self.deployments.caught_up()

    def training_request(self, **overrides: Any) -> dict[str, Any]:
        return {
            "base_model": self.base_model_name,
            "dataset": self.chat_dataset,
            "method": "sft",
            "adapter": {"r": 8, "alpha": 16, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]},
            "quantization": "none",
            "hyperparameters": {"max_steps": 20, "learning_rate": 1e-3, "batch_size": 4, "seq_len": 64, "seed": 7},
            "eval_split": 0.2,
            **overrides,
        }


async def register_dataset(
    bus: Bus, client: httpx.AsyncClient, name: str, version: int, schema: DatasetSchema = DatasetSchema.CHAT
) -> str:
    """Announce a dataset version as the gateway's upload would, and wait until the registry lists it."""
    dataset_id = f"dataset-{name}-v{version}"
    await bus.publish(
        DatasetVersionCreated(
            dataset_id=dataset_id,
            name=name,
            version=version,
            schema_kind=schema,
            uri=f"file:///datasets/{name}",
            num_rows=10,
            size_bytes=1000,
            created_by="tests",
        )
    )
    async with asyncio.timeout(WAIT_S):
        while True:
            listed = (await client.get("/v1/artifacts", params={"kind": "dataset", "name": name})).json()["data"]
            if any(record["id"] == dataset_id for record in listed):
                return dataset_id
            await asyncio.sleep(0.1)


@asynccontextmanager
async def job_world(gateway: Any, bus: Bus) -> AsyncIterator[JobWorld]:
    """Keys, a base model imported through the gateway, datasets announced on `bus`, and the taps (from now on)."""
    developer = await gateway.keys.make("developer", rate_limit="100000/minute")
    viewer = await gateway.keys.make("viewer", rate_limit="100000/minute")
    async with (
        TopicTap(bus.settings, TRAINING_COMMANDS) as commands,
        TopicTap(bus.settings, DEPLOYMENT_COMMANDS) as deployments,
    ):
        async with gateway.client(developer.secret) as dev:
            name = f"tiny-llama-{uuid.uuid4().hex[:8]}"
            accepted = await import_artifact(dev, sample_files(name), name=name)
            base_model_id = accepted.json()["id"]
            await registered(dev, base_model_id)
            chat, preference = f"chat-{uuid.uuid4().hex[:8]}", f"pairs-{uuid.uuid4().hex[:8]}"
            for version in (0, 1):
                await register_dataset(bus, dev, chat, version)
            await register_dataset(bus, dev, preference, 0, DatasetSchema.PREFERENCE)
        yield JobWorld(developer, viewer, base_model_id, name, chat, preference, commands, bus, deployments)


async def job_when(client: httpx.AsyncClient, job_id: str, **expected: Any) -> dict[str, Any]:
    """The job once every `expected` field has its value."""
    async with asyncio.timeout(WAIT_S):
        while True:
            job: dict[str, Any] = (await client.get(f"/v1/jobs/{job_id}")).json()
            if all(job.get(name) == value for name, value in expected.items()):
                return job
            await asyncio.sleep(0.05)


@dataclass(frozen=True)
class Sse:
    id: str | None
    event: str | None
    data: dict[str, Any]


async def sse_events(response: httpx.Response, limit: int | None = None) -> list[Sse]:
    """The events of a text/event-stream body until it ends, or until `limit` of them arrived."""
    events: list[Sse] = []
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line.startswith(":"):
            continue  # a keep-alive comment
        if line:
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
            continue
        if "data" in fields:
            events.append(Sse(fields.get("id"), fields.get("event"), json.loads(fields["data"])))
            if limit is not None and len(events) == limit:
                break
        fields = {}
    return events
