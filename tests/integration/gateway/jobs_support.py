"""Helpers for the gateway's job tests: a registered base model and datasets, taps on training.commands.v1 and
deployments.commands.v1, a stand-in trainer that publishes training events, and a Server-Sent Events reader."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from modelops_contracts import DatasetSchema, DatasetVersionCreated, Message, decode
from modelops_contracts.catalog import DEPLOYMENT_COMMANDS, TRAINING_COMMANDS, Topic
from modelops_shared.bus import Bus
from modelops_shared.settings import Settings

from .support import WAIT_S, Key, import_artifact, registered, sample_files


class CommandTap:
    """Every command on `topic` (training.commands.v1 unless told) from the moment the tap started."""

    def __init__(self, settings: Settings, topic: Topic = TRAINING_COMMANDS) -> None:
        self.topic = topic
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap, group_id=None, fetch_max_wait_ms=50
        )
        self.commands: list[Message] = []
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.consumer.start()
        partitions = [TopicPartition(self.topic.name, p) for p in range(self.topic.partitions)]
        self.consumer.assign(partitions)
        await self.consumer.seek_to_end(*partitions)
        for partition in partitions:
            await self.consumer.position(partition)  # resolve the end now, not at the first fetch
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.consumer.stop()

    async def _run(self) -> None:
        while True:
            for records in (await self.consumer.getmany(timeout_ms=200)).values():
                for record in records:
                    headers = {name: value.decode() for name, value in record.headers}
                    self.commands.append(decode(record.key, record.value, headers)[1])

    def of(self, subject: str, kind: type[Message] | None = None) -> list[Any]:
        return [c for c in self.commands if c.subject() == subject and (kind is None or isinstance(c, kind))]

    async def wait_for(self, subject: str, kind: type[Message], count: int = 1) -> list[Any]:
        """The first `count` commands of `kind` about `subject` (a job id, a deployment name), once that many
        arrived."""
        async with asyncio.timeout(WAIT_S):
            while len(found := self.of(subject, kind)) < count:
                await asyncio.sleep(0.05)
        return found


@dataclass
class JobWorld:
    """What job tests share: keys, a registered base model and a chat and a preference dataset, the taps, a bus."""

    developer: Key
    viewer: Key
    base_model_id: str
    base_model_name: str
    chat_dataset: str
    preference_dataset: str
    commands: CommandTap
    bus: Bus
    deployments: CommandTap

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
async def job_world(gateway: Any, settings: Settings) -> AsyncIterator[JobWorld]:
    developer = await gateway.keys.make("developer", rate_limit="100000/minute")
    viewer = await gateway.keys.make("viewer", rate_limit="100000/minute")
    bus = Bus(settings.model_copy(update={"service_name": "trainer"}))
    await bus.start()
    tap = CommandTap(settings)
    await tap.start()
    deployments = CommandTap(settings, DEPLOYMENT_COMMANDS)
    await deployments.start()
    try:
        async with gateway.client(developer.secret) as dev:
            name = f"tiny-llama-{uuid.uuid4().hex[:8]}"
            accepted = await import_artifact(dev, sample_files(name), name=name)
            base_model_id = accepted.json()["id"]
            await registered(dev, base_model_id)
            chat, preference = f"chat-{uuid.uuid4().hex[:8]}", f"pairs-{uuid.uuid4().hex[:8]}"
            for version in (0, 1):
                await register_dataset(bus, dev, chat, version)
            await register_dataset(bus, dev, preference, 0, DatasetSchema.PREFERENCE)
        yield JobWorld(developer, viewer, base_model_id, name, chat, preference, tap, bus, deployments)
    finally:
        await deployments.stop()
        await tap.stop()
        await bus.stop()


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
