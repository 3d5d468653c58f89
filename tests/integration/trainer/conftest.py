"""The trainer's world for one test session, beside the shared registry, bus and base model: an event tap, and trainer
settings whose consumer group and schema every worker of the session shares (as replicas do)."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from helpers import TopicTap
from modelops_contracts.catalog import ARTIFACT_SUBMISSIONS, TRAINING_EVENTS
from modelops_shared.settings import Settings
from modelops_trainer.settings import TrainerSettings


@pytest.fixture(scope="session")
def trainer_settings(embedded_stack: Settings, registry_url: str) -> Iterator[TrainerSettings]:
    suffix = uuid.uuid4().hex[:8]
    work_dir = Path(tempfile.mkdtemp(prefix="modelops-trainer-"))
    yield TrainerSettings(
        **embedded_stack.model_dump(exclude={"service_name", "registry_url"}),
        registry_url=registry_url,
        trainer_schema=f"trainer_{suffix}",
        trainer_group=f"trainer-{suffix}",
        # Not under pytest's tmp root: worker subprocesses of the session share it.
        trainer_work_dir=work_dir,
        trainer_checkpoint_every_steps=4,
        trainer_progress_every_steps=2,
    )
    shutil.rmtree(work_dir, ignore_errors=True)


@pytest.fixture(scope="session")
async def events(embedded_stack: Settings) -> AsyncIterator[TopicTap]:
    """Every message on training.events.v1 and artifacts.submissions.v1 since the topics began."""
    async with TopicTap(embedded_stack, TRAINING_EVENTS, ARTIFACT_SUBMISSIONS, from_beginning=True) as tap:
        yield tap
