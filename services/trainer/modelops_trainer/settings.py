"""Trainer settings: the shared ones plus the consumer group, progress cadence, checkpoints and local scratch space."""

from __future__ import annotations

import os
from pathlib import Path

from modelops_shared.settings import Settings
from pydantic import Field


class TrainerSettings(Settings):
    service_name: str = "trainer"
    trainer_schema: str = Field("trainer", description="Postgres schema: job outcomes and the outbox")
    trainer_group: str = Field("trainer", description="Consumer group every trainer replica joins")
    trainer_imports_group: str = Field("trainer-imports", description="Consumer group of the model importers")
    trainer_worker_id: str | None = Field(None, description="Name in TrainingStarted; default <host>-<pid>")
    trainer_work_dir: Path | None = Field(None, description="Scratch space; default <state_dir>/trainer")
    trainer_progress_every_steps: int = Field(10, ge=1, description="TrainingProgressed every N steps …")
    trainer_progress_every_s: float = Field(5.0, gt=0, description="… or every T seconds, whichever comes first")
    trainer_checkpoint_every_steps: int = Field(50, ge=1, description="Checkpoint to the object store every K steps")
    trainer_keep_checkpoints: int = Field(2, ge=1, description="Checkpoints kept per job in the object store")
    trainer_max_job_attempts: int = Field(
        3, ge=1, description="Starts of one job (its worker died each time) before it is failed instead of retried"
    )
    trainer_max_cpu_ranks: int = Field(
        default_factory=lambda: len(os.sched_getaffinity(0)),
        ge=1,
        description="Most processes a job may train with on a worker without GPUs (default: the cores it may use)",
    )
    trainer_exact_match_max_tokens: int = Field(
        16, ge=1, description="Held-out answers up to this many tokens are scored by exact match"
    )

    @property
    def work_dir(self) -> Path:
        return self.trainer_work_dir or self.state_dir / "trainer"
