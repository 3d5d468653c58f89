"""Helpers for the trainer tests: rows to learn from, and jobs published as the gateway does."""

from __future__ import annotations

import os
import uuid
from typing import Any

from helpers import create_dataset
from modelops_contracts import Hyperparameters, StartTraining
from transformers import TrainerCallback

__all__ = ["RaiseOnRank", "arithmetic_rows", "create_dataset", "job"]


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


class RaiseOnRank(TrainerCallback):
    """A callback plugin that raises on one rank at one step: a job gone bad where only one training process sees
    it. Pickled by reference, so the ranks of a distributed run import it from here."""

    def __init__(self, rank: int, step: int) -> None:
        self.rank = rank
        self.step = step

    def on_step_end(self, args: Any, state: Any, control: Any, **_: Any) -> None:
        if int(os.environ.get("RANK", "0")) == self.rank and state.global_step == self.step:
            raise ValueError(f"row {self.step} cannot be read")
