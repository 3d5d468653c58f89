"""Data-parallel training with torch.distributed on CPU (gloo): two ranks follow one process's loss curve at the same
global batch; a rank that raises fails the run with its error and leaves no process behind; through the service, a
2-worker job whose rank is killed resumes from its checkpoint and completes; what a worker cannot give is refused."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from helpers import TopicTap
from modelops_contracts import (
    AdapterSpec,
    DatasetSchema,
    Hyperparameters,
    JobStatus,
    JobUsageRecorded,
    Resources,
    StartTraining,
    TrainingCheckpointed,
    TrainingCompleted,
    TrainingFailed,
    TrainingStarted,
)
from modelops_contracts.catalog import USAGE_EVENTS
from modelops_trainer import distributed, engine
from modelops_trainer.app import create_app
from modelops_trainer.domain import JobSpecError
from modelops_trainer.plugins import Plugins
from modelops_trainer.settings import TrainerSettings

from .support import RaiseOnRank, Recorder, arithmetic_rows, create_dataset, job

STEPS = 12
# Rows enough that every step of the comparison stays inside the first epoch: an epoch's last, partial batch is
# split differently (DDP repeats rows to give every rank as many).
ROWS = arithmetic_rows(1200, seed=3)


def plan(base: Path, out: Path, *, batch_size: int, ranks: int, **fields: Any) -> engine.Plan:
    return engine.Plan(
        method="sft",
        schema="sft",
        base_model=base,
        rows=ROWS,
        hyperparameters=Hyperparameters(max_steps=STEPS, batch_size=batch_size, seq_len=64, learning_rate=5e-3, seed=7),
        adapter=AdapterSpec(dropout=0.0),  # dropout draws from each rank's own generator
        quantization="none",
        eval_split=0.1,
        output_dir=out,
        checkpoint_every=6,
        progress_every_steps=1,
        progress_every_s=1e9,
        ranks=ranks,
        **fields,
    )


def rank_processes() -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if distributed.RANK_MODULE in " ".join(process.info["cmdline"] or []):
            found.append(process)
    return found


def test_two_ranks_follow_the_loss_curve_of_one_process_at_the_same_global_batch(base_model_dir, tmp_path):
    alone, together = Recorder(), Recorder()
    one = engine.run(plan(base_model_dir, tmp_path / "one", batch_size=8, ranks=1), alone)
    two = distributed.launch(plan(base_model_dir, tmp_path / "two", batch_size=4, ranks=2), together)

    assert sorted(together.losses) == list(range(1, STEPS + 1))
    # Same rows per step, the loss averaged over both ranks' tokens (transformers' average_tokens_across_devices):
    # the curves agree to float rounding; 1e-4 leaves room for a different reduction order.
    for step, loss in alone.losses.items():
        assert together.losses[step] == pytest.approx(loss, rel=1e-4), step
    assert two.metrics["eval_loss"] == pytest.approx(one.metrics["eval_loss"], rel=1e-3)
    assert together.starts == [(STEPS, 0)]
    # The checkpoint rank 0 hands over holds every rank's RNG state.
    assert {"adapter_model.safetensors", "rng_state_0.pth", "rng_state_1.pth"} <= together.checkpoints[6]
    assert two.adapter_dir is not None
    assert (two.adapter_dir / "adapter_model.safetensors").exists()
    assert not rank_processes()


def test_a_rank_that_raises_fails_the_run_with_its_error_and_leaves_no_process(base_model_dir, tmp_path):
    bad = plan(
        base_model_dir, tmp_path, batch_size=4, ranks=2, plugins=Plugins(callbacks=[RaiseOnRank(rank=1, step=3)])
    )
    with pytest.raises(distributed.RankFailed, match=r"rank 1 of 2: ValueError: row 3 cannot be read"):
        distributed.launch(bad, Recorder())
    assert not rank_processes()


@pytest.fixture(scope="module")
async def trainer(trainer_settings: TrainerSettings) -> AsyncIterator[None]:
    app = create_app(trainer_settings)
    async with app.router.lifespan_context(app):
        yield


async def test_a_two_worker_job_that_loses_a_rank_resumes_from_its_checkpoint(
    trainer, base_model, bus, events: TopicTap, registry, embedded_stack
):
    dataset = await create_dataset(embedded_stack, bus, registry, ROWS[:400], DatasetSchema.SFT)
    spec = job(base_model, dataset, steps=24, resources=Resources(workers=2))
    async with TopicTap(embedded_stack, USAGE_EVENTS) as usage:
        await bus.publish(spec)
        await _resumes_after_losing_a_rank(spec, events)
        [used] = await usage.wait_for(spec.job_id, JobUsageRecorded)
    # The attempt that ended the job: both ranks' CPU time (child processes) and memory, rank 0's tokens × 2.
    assert used.status == JobStatus.COMPLETED
    assert used.usage.cpu_seconds > 0.5 * used.usage.wall_seconds
    assert used.usage.peak_memory_bytes > 200 * 1024**2
    assert used.usage.tokens > 0
    assert used.usage.gpu_seconds == 0


async def _resumes_after_losing_a_rank(spec: StartTraining, events: TopicTap) -> None:
    async with asyncio.timeout(120):
        while not events.of(spec.job_id, TrainingCheckpointed):
            await asyncio.sleep(0.05)
    [lost] = [p for p in rank_processes() if p.environ().get("RANK") == "1"]
    lost.send_signal(signal.SIGKILL)
    killed_after = max(c.step for c in events.of(spec.job_id, TrainingCheckpointed))

    ended = await events.first(spec.job_id, TrainingCompleted, TrainingFailed, timeout=180)
    assert isinstance(ended, TrainingCompleted), ended
    assert ended.steps == 24
    starts = [s.resumed_from_step for s in events.of(spec.job_id, TrainingStarted)]
    assert len(starts) == 2, starts
    assert starts[0] == 0
    assert starts[1] >= killed_after > 0
    assert not rank_processes()


async def test_resources_a_worker_cannot_give_are_refused(
    trainer, base_model, bus, events: TopicTap, registry, embedded_stack
):
    dataset = await create_dataset(embedded_stack, bus, registry, ROWS[:50], DatasetSchema.SFT)
    zero = job(base_model, dataset, resources=Resources(workers=2, zero_stage=2))
    too_many = job(base_model, dataset, resources=Resources(workers=8, devices_per_worker=16))
    for spec in (zero, too_many):
        await bus.publish(spec)
    failed = [await events.first(spec.job_id, TrainingCompleted, TrainingFailed) for spec in (zero, too_many)]
    assert [type(f) for f in failed] == [TrainingFailed, TrainingFailed]
    assert "DeepSpeed ZeRO-2 needs CUDA GPUs" in failed[0].reason
    assert "asks for 128 processes" in failed[1].reason
    assert JobSpecError.error_type == failed[1].error_type
