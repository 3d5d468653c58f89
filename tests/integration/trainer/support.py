"""Helpers for the trainer tests: a registry on a real port, datasets written as Delta tables and announced as the
gateway will, jobs published as the gateway will (its jobs API does not exist yet), and a tap on the event topics."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import defaultdict
from typing import Any

import httpx
import pyarrow as pa
from aiokafka import AIOKafkaConsumer, TopicPartition
from deltalake import write_deltalake
from modelops_contracts import (
    DatasetSchema,
    DatasetVersionCreated,
    Hyperparameters,
    Message,
    StartTraining,
    decode,
)
from modelops_contracts.catalog import ARTIFACT_SUBMISSIONS, TRAINING_EVENTS
from modelops_shared.bus import Bus
from modelops_shared.settings import Settings
from modelops_shared.storage.delta import dataset_table_uri, delta_storage_options

WAIT_S = 120


class EventTap:
    """Every message on training.events.v1 and artifacts.submissions.v1 since the session began, by subject."""

    def __init__(self, settings: Settings) -> None:
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap, group_id=None, fetch_max_wait_ms=50
        )
        self.by_subject: dict[str, list[Message]] = defaultdict(list)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.consumer.start()
        partitions = [
            TopicPartition(topic.name, p)
            for topic in (TRAINING_EVENTS, ARTIFACT_SUBMISSIONS)
            for p in range(topic.partitions)
        ]
        self.consumer.assign(partitions)
        await self.consumer.seek_to_beginning(*partitions)
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
                    _, body = decode(record.key, record.value, headers)
                    self.by_subject[body.subject()].append(body)

    def of(self, subject: str, kind: type[Message] | None = None) -> list[Any]:
        return [m for m in self.by_subject[subject] if kind is None or isinstance(m, kind)]

    async def wait_for(self, subject: str, *kinds: type[Message], timeout: float = WAIT_S) -> Any:
        """The first message about `subject` of one of `kinds`."""
        async with asyncio.timeout(timeout):
            while True:
                found = [m for m in self.by_subject[subject] if isinstance(m, kinds)]
                if found:
                    return found[0]
                await asyncio.sleep(0.1)


def arithmetic_rows(count: int, seed: int = 0) -> list[dict[str, str]]:
    """Short sft rows a tiny model can learn something of in a few dozen steps."""
    import random

    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        a, b = rng.randint(0, 9), rng.randint(0, 9)
        rows.append({"prompt": f"Question: what is {a} plus {b}? Answer:", "completion": f" {a + b}"})
    return rows


async def create_dataset(
    settings: Settings, bus: Bus, registry: httpx.AsyncClient, rows: list[dict[str, Any]], schema: DatasetSchema
) -> tuple[str, int]:
    """Commit `rows` as a new Delta table and announce the version, as the gateway's dataset path does; waits until
    the registry knows it. Returns (name, version)."""
    name = f"ds-{uuid.uuid4().hex[:8]}"
    uri = dataset_table_uri(settings, name)
    await asyncio.to_thread(
        write_deltalake, uri, pa.Table.from_pylist(rows), storage_options=delta_storage_options(settings)
    )
    dataset_id = f"dataset-{name}-v0"
    await bus.publish(
        DatasetVersionCreated(
            dataset_id=dataset_id,
            name=name,
            version=0,
            schema_kind=schema,
            uri=uri,
            num_rows=len(rows),
            size_bytes=1,
            created_by="alice",
        )
    )
    async with asyncio.timeout(WAIT_S):
        while (await registry.get(f"/v1/artifacts/{dataset_id}")).status_code != 200:
            await asyncio.sleep(0.1)
    return name, 0


def job(base_model: str, dataset: tuple[str, int], *, steps: int = 12, **fields: Any) -> StartTraining:
    hyperparameters = {"max_steps": steps, "batch_size": 4, "seq_len": 64, "learning_rate": 5e-3, "seed": 7}
    hyperparameters.update(fields.pop("hyperparameters", {}))
    return StartTraining(
        job_id=f"job-{uuid.uuid4().hex[:12]}",
        submitted_by="alice",
        base_model=base_model,
        dataset=dataset[0],
        dataset_version=dataset[1],
        hyperparameters=Hyperparameters(**hyperparameters),
        eval_split=0.2,
        **fields,
    )
