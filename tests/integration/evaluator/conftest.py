"""The evaluator's world for one test session, beside SmolLM2 and a LoRA of it (the integration conftest): an event
tap, evaluator settings whose consumer group and schema every worker of the session shares, and a worker."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from helpers import TopicTap
from modelops_contracts.catalog import ARTIFACT_SUBMISSIONS, EVALUATION_EVENTS
from modelops_evaluator.app import create_app
from modelops_evaluator.settings import EvaluatorSettings
from modelops_shared.settings import Settings


@pytest.fixture(scope="session")
def evaluator_settings(embedded_stack: Settings, registry_url: str) -> Iterator[EvaluatorSettings]:
    suffix = uuid.uuid4().hex[:8]
    work_dir = Path(tempfile.mkdtemp(prefix="modelops-evaluator-"))
    yield EvaluatorSettings(
        **embedded_stack.model_dump(exclude={"service_name", "registry_url"}),
        registry_url=registry_url,
        evaluator_schema=f"evaluator_{suffix}",
        evaluator_group=f"evaluator-{suffix}",
        evaluator_work_dir=work_dir,
    )
    shutil.rmtree(work_dir, ignore_errors=True)


@pytest.fixture(scope="session")
async def events(embedded_stack: Settings) -> AsyncIterator[TopicTap]:
    """Every message on evaluation.events.v1 and artifacts.submissions.v1 since the topics began."""
    async with TopicTap(embedded_stack, EVALUATION_EVENTS, ARTIFACT_SUBMISSIONS, from_beginning=True) as tap:
        yield tap


@pytest.fixture
async def evaluator(evaluator_settings: EvaluatorSettings) -> AsyncIterator[None]:
    """One evaluator worker in this process, stopped after the test."""
    app = create_app(evaluator_settings)
    async with app.router.lifespan_context(app):
        yield
