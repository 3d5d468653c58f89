"""The quantizer's world for one test session: SmolLM2 with a LoRA adapter of it registered, an event tap, and
quantizer settings whose consumer group and schema every worker of the session shares (as replicas do)."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import torch
from helpers import TopicTap, registered
from modelops_contracts import ArtifactKind, ArtifactSubmitted, LineageRelation, ParentRef
from modelops_contracts.catalog import ARTIFACT_SUBMISSIONS, QUANTIZATION_EVENTS
from modelops_quantizer.settings import QuantizerSettings
from modelops_shared.artifact_upload import upload_directory
from modelops_shared.bus import Bus
from modelops_shared.settings import Settings
from modelops_shared.storage import open_store
from modelops_trainer.gguf_import import GgufInfo
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM


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


def make_lora(base_dir: Path, output: Path) -> Path:
    """A LoRA of SmolLM2 on q/v with small random B matrices: it changes the model measurably, as a trained one does
    (the pipeline's arithmetic does not care how the deltas were learned; the demo quantizes a trained adapter)."""
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    config = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    peft_model = get_peft_model(model, config)
    with torch.no_grad():
        for name, weight in peft_model.named_parameters():
            if "lora_B" in name:
                weight.mul_(0.02)
    peft_model.save_pretrained(output)
    return output


@pytest.fixture(scope="session")
async def smollm2_adapter(
    embedded_stack: Settings,
    bus: Bus,
    registry: httpx.AsyncClient,
    smollm2_dir: tuple[GgufInfo, Path],
    smollm2_base_model: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> str:
    """A LoRA adapter of the registered SmolLM2, stored, submitted and registered; its artifact id."""
    directory = make_lora(smollm2_dir[1], tmp_path_factory.mktemp("smollm2-lora"))
    artifact_id = f"adapter-smollm2-{uuid.uuid4().hex[:12]}"
    store = open_store(embedded_stack.store_url, embedded_stack)
    files = await upload_directory(store, directory, f"artifacts/{artifact_id}")
    await bus.publish(
        ArtifactSubmitted(
            artifact_id=artifact_id,
            kind=ArtifactKind.ADAPTER,
            name="smollm2-random-lora",
            uri=store.url_of(f"artifacts/{artifact_id}"),
            files=files,
            parents=[ParentRef(artifact_id=smollm2_base_model, relation=LineageRelation.TRAINED_FROM)],
            created_by="test",
            metadata={"method": "sft", "base_model": smollm2_base_model},
        )
    )
    await registered(registry, artifact_id)
    return artifact_id
