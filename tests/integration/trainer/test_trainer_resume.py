"""A worker process killed mid-job: the command is redelivered, another worker resumes from the last checkpoint and
finishes with the same step count, and exactly one adapter comes out (asserted once a later job on the same partition
has ended, and everything the workers staged has been published and read)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from pathlib import Path

import asyncpg
from aiokafka.partitioner import DefaultPartitioner
from helpers import TopicTap, outbox_sent, spawn_service
from modelops_contracts import (
    ArtifactSubmitted,
    DatasetSchema,
    TrainingCheckpointed,
    TrainingCompleted,
    TrainingFailed,
    TrainingStarted,
)
from modelops_contracts.catalog import TRAINING_COMMANDS
from modelops_trainer.jobs import adapter_artifact_id
from modelops_trainer.settings import TrainerSettings

from .support import arithmetic_rows, create_dataset, job

STEPS = 24


def partition_of(job_id: str) -> int:
    """The training.commands.v1 partition a job's commands land on (keyed by job id, Kafka's default partitioner)."""
    partitions = list(range(TRAINING_COMMANDS.partitions))
    return int(DefaultPartitioner()(job_id.encode(), partitions, partitions))


def spawn(settings: TrainerSettings, name: str, log: Path) -> subprocess.Popen[bytes]:
    return spawn_service(
        "trainer",
        {
            "registry_url": settings.registry_url,
            "trainer_schema": settings.trainer_schema,
            "trainer_group": settings.trainer_group,
            "trainer_work_dir": str(settings.work_dir / name),
            "trainer_worker_id": name,
            "trainer_checkpoint_every_steps": "4",
            "trainer_progress_every_steps": "2",
        },
        log,
    )


async def test_a_killed_worker_s_job_resumes_elsewhere_from_its_checkpoint(
    trainer_settings, base_model, bus, events: TopicTap, registry, embedded_stack, worker_processes, tmp_path
):
    dataset = await create_dataset(embedded_stack, bus, registry, arithmetic_rows(200, seed=3), DatasetSchema.SFT)
    first = spawn(trainer_settings, "worker-a", tmp_path / "a.log")
    worker_processes.append(first)
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

    worker_processes.append(spawn(trainer_settings, "worker-b", tmp_path / "b.log"))
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
