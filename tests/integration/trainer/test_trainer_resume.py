"""A worker process killed mid-job: the command is redelivered, another worker resumes from the last checkpoint and
finishes with the same step count, and exactly one adapter comes out (asserted once a later job on the same partition
has ended, and everything the workers staged has been published and read)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from aiokafka.partitioner import DefaultPartitioner
from helpers import TopicTap, outbox_sent
from modelops_contracts import (
    ArtifactSubmitted,
    DatasetSchema,
    TrainingCheckpointed,
    TrainingCompleted,
    TrainingFailed,
    TrainingStarted,
)
from modelops_contracts.catalog import TRAINING_COMMANDS
from modelops_shared.devstack import free_port
from modelops_trainer.jobs import adapter_artifact_id
from modelops_trainer.settings import TrainerSettings

from .support import arithmetic_rows, create_dataset, job

STEPS = 24


@pytest.fixture
def workers(trainer_settings: TrainerSettings, tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Start trainer worker processes with `spawn(name)`; every one still running is killed at the end."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(30)


def partition_of(job_id: str) -> int:
    """The training.commands.v1 partition a job's commands land on (keyed by job id, Kafka's default partitioner)."""
    partitions = list(range(TRAINING_COMMANDS.partitions))
    return int(DefaultPartitioner()(job_id.encode(), partitions, partitions))


def spawn(settings: TrainerSettings, name: str, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "MODELOPS_SERVICE_NAME": "trainer",
        "MODELOPS_REGISTRY_URL": settings.registry_url,
        "MODELOPS_TRAINER_SCHEMA": settings.trainer_schema,
        "MODELOPS_TRAINER_GROUP": settings.trainer_group,
        "MODELOPS_TRAINER_WORK_DIR": str(settings.work_dir / name),
        "MODELOPS_TRAINER_WORKER_ID": name,
        "MODELOPS_TRAINER_PORT": str(free_port()),
        "MODELOPS_TRAINER_CHECKPOINT_EVERY_STEPS": "4",
        "MODELOPS_TRAINER_PROGRESS_EVERY_STEPS": "2",
    }
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "modelops_trainer"], env=env, stdout=out, stderr=subprocess.STDOUT
        )


async def test_a_killed_worker_s_job_resumes_elsewhere_from_its_checkpoint(
    trainer_settings, base_model, bus, events: TopicTap, registry, embedded_stack, workers, tmp_path
):
    dataset = await create_dataset(embedded_stack, bus, registry, arithmetic_rows(200, seed=3), DatasetSchema.SFT)
    first = spawn(trainer_settings, "worker-a", tmp_path / "a.log")
    workers.append(first)
    spec = job(base_model, dataset, steps=STEPS, hyperparameters={"batch_size": 8, "seq_len": 128})
    await bus.publish(spec)

    async with asyncio.timeout(120):
        while not [c for c in events.of(spec.job_id, TrainingCheckpointed) if c.step >= 8]:
            assert first.poll() is None, (tmp_path / "a.log").read_text()[-3000:]
            await asyncio.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait(30)
    killed_at = max(c.step for c in events.of(spec.job_id, TrainingCheckpointed))
    assert killed_at < STEPS, "the job finished before the worker could be killed"

    workers.append(spawn(trainer_settings, "worker-b", tmp_path / "b.log"))
    ended = await events.first(spec.job_id, TrainingCompleted, TrainingFailed, timeout=180)

    assert isinstance(ended, TrainingCompleted), ended
    assert ended.steps == STEPS
    starts = events.of(spec.job_id, TrainingStarted)
    assert [(s.worker, s.resumed_from_step) for s in starts] == [("worker-a", 0), ("worker-b", killed_at)]
    adapter_id = adapter_artifact_id(spec.job_id)

    # The sentinel: a job on the same partition, so the worker handles its command after the resumed one (and after a
    # redelivery of it, were there one). It names no dataset, so it fails at once.
    sentinel = job(base_model, ("no-such-dataset", 0))
    while partition_of(sentinel.job_id) != partition_of(spec.job_id):
        sentinel = job(base_model, ("no-such-dataset", 0))
    await bus.publish(sentinel)
    failed = await events.first(sentinel.job_id, TrainingCompleted, TrainingFailed)
    assert isinstance(failed, TrainingFailed), failed
    outbox = await asyncpg.connect(
        embedded_stack.database_url.get_secret_value(), server_settings={"search_path": trainer_settings.trainer_schema}
    )
    try:
        await outbox_sent(outbox)  # what the workers staged before the sentinel's end has left
    finally:
        await outbox.close()
    await events.caught_up()
    assert len(events.of(adapter_id, ArtifactSubmitted)) == 1
    assert len(events.of(spec.job_id, TrainingCompleted)) == 1
    adapters = (await registry.get("/v1/artifacts", params={"kind": "adapter", "limit": 500})).json()["data"]
    assert [a["id"] for a in adapters if a["job_id"] == spec.job_id] == [adapter_id]
