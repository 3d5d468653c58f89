"""Helpers for the trainer tests: rows to learn from, jobs published as the gateway does, hooks that keep what a run
reports, and a callback that fails one rank of a distributed run."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

from helpers import create_dataset
from modelops_contracts import Hyperparameters, StartTraining
from modelops_trainer.callbacks import Progress
from transformers import TrainerCallback

__all__ = ["RaiseOnRank", "Recorder", "arithmetic_rows", "create_dataset", "job"]


def arithmetic_rows(count: int, seed: int = 0) -> list[dict[str, str]]:
    """Short sft rows a tiny model can learn something of in a few dozen steps."""
    import random

    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        a, b = rng.randint(0, 9), rng.randint(0, 9)
        rows.append({"prompt": f"Question: what is {a} plus {b}? Answer:", "completion": f" {a + b}"})
    return rows


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


class Recorder:
    """Training hooks that keep what a run reports (engine.run and distributed.launch called directly)."""

    def __init__(self) -> None:
        self.losses: dict[int, float] = {}
        self.rates: list[float] = []
        self.starts: list[tuple[int, int]] = []
        self.checkpoints: dict[int, set[str]] = {}

    def started(self, total_steps: int, resumed_from_step: int) -> None:
        self.starts.append((total_steps, resumed_from_step))

    def progressed(self, progress: Progress) -> None:
        self.losses[progress.step] = progress.loss
        self.rates.append(progress.tokens_per_second)

    def checkpointed(self, step: int, directory: Path) -> None:
        self.checkpoints[step] = {path.name for path in directory.iterdir()}

    def stop_reason(self) -> str | None:
        return None


class RaiseOnRank(TrainerCallback):
    """A callback plugin that raises on one rank at one step: a job gone bad where only one training process sees
    it. Pickled by reference, so the ranks of a distributed run import it from here."""

    def __init__(self, rank: int, step: int) -> None:
        self.rank = rank
        self.step = step

    def on_step_end(self, args: Any, state: Any, control: Any, **_: Any) -> None:
        if int(os.environ.get("RANK", "0")) == self.rank and state.global_step == self.step:
            raise ValueError(f"row {self.step} cannot be read")
