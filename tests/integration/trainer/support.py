"""Helpers for the trainer tests: datasets written as Delta tables and announced as the gateway does, and jobs
published as the gateway does."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pyarrow as pa
from deltalake import write_deltalake
from helpers import registered
from modelops_contracts import (
    DatasetSchema,
    DatasetVersionCreated,
    Hyperparameters,
    StartTraining,
)
from modelops_shared.bus import Bus
from modelops_shared.settings import Settings
from modelops_shared.storage.delta import dataset_table_uri, delta_storage_options


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
    await registered(registry, dataset_id)
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
