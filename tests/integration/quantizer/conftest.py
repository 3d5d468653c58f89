"""The quantizer's world for one test session, beside SmolLM2 and a LoRA of it (the integration conftest): an event
tap, and quantizer settings whose consumer group and schema every worker of the session shares (as replicas do)."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from helpers import TopicTap
from modelops_contracts.catalog import ARTIFACT_SUBMISSIONS, QUANTIZATION_EVENTS
from modelops_quantizer.settings import QuantizerSettings
from modelops_shared.settings import Settings


@pytest.fixture(scope="session")
def quantizer_settings(embedded_stack: Settings, registry_url: str) -> Iterator[QuantizerSettings]:
    suffix = uuid.uuid4().hex[:8]
    work_dir = Path(tempfile.mkdtemp(prefix="modelops-quantizer-"))
    yield QuantizerSettings(
        **embedded_stack.model_dump(exclude={"service_name", "registry_url"}),
        registry_url=registry_url,
        quantizer_schema=f"quantizer_{suffix}",
        quantizer_group=f"quantizer-{suffix}",
        # Not under pytest's tmp root: worker subprocesses of the session share it.
        quantizer_work_dir=work_dir,
        quantizer_speed_tokens=16,
    )
    shutil.rmtree(work_dir, ignore_errors=True)


@pytest.fixture(scope="session")
async def events(embedded_stack: Settings) -> AsyncIterator[TopicTap]:
    """Every message on quantization.events.v1 and artifacts.submissions.v1 since the topics began."""
    async with TopicTap(embedded_stack, QUANTIZATION_EVENTS, ARTIFACT_SUBMISSIONS, from_beginning=True) as tap:
        yield tap
