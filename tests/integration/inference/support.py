"""Helpers for the inference tests: LoRA adapters made and registered as the trainer would, deployments commanded as
the gateway does, and reference generations straight from PEFT."""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
import uuid
from pathlib import Path
from typing import Any

import httpx
import torch
from helpers import registered
from modelops_contracts import ArtifactKind, ArtifactSubmitted, Deploy, FileDigest, LineageRelation, ParentRef
from modelops_inference.settings import InferenceSettings
from modelops_shared.bus import Bus
from modelops_shared.settings import Settings
from modelops_shared.storage import open_store
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer

WAIT_S = 120


def inference_settings(stack: Settings, registry_url: str) -> InferenceSettings:
    """An inference replica of its own (schema, consumer groups, artifact cache) on the test stack. Its new groups
    start at the topics' ends, so earlier tests' Deploys are left alone."""
    suffix = uuid.uuid4().hex[:8]
    return InferenceSettings(
        **stack.model_dump(exclude={"service_name", "registry_url"}),
        registry_url=registry_url,
        inference_schema=f"inference_{suffix}",
        inference_group=f"inference-{suffix}",
        inference_work_dir=Path(tempfile.mkdtemp(prefix="modelops-inference-")),
        inference_max_tokens=16,
    )


def make_adapter(base: Path, target: Path, seed: int) -> None:
    """A LoRA adapter with random (non-zero) weights, so it visibly changes the base model's outputs."""
    torch.manual_seed(seed)
    config = LoraConfig(r=8, target_modules=["q_proj", "v_proj", "o_proj", "down_proj"], init_lora_weights=False)
    get_peft_model(AutoModelForCausalLM.from_pretrained(base), config).save_pretrained(target)


async def submit_adapter(
    settings: Settings,
    bus: Bus,
    registry: httpx.AsyncClient,
    directory: Path,
    base_model: str,
    name: str,
    artifact_id: str | None = None,
) -> str:
    """Submit the adapter as the trainer does (under `artifact_id`, else a new one) and wait until it is registered."""
    store = open_store(settings.store_url, settings)
    artifact_id = artifact_id or f"{name}-{uuid.uuid4().hex[:8]}"
    files = []
    for path in await asyncio.to_thread(lambda: sorted(p for p in directory.rglob("*") if p.is_file())):
        relative = path.relative_to(directory).as_posix()
        await store.put(f"artifacts/{artifact_id}/{relative}", path)
        files.append(
            FileDigest(path=relative, sha256=hashlib.sha256(path.read_bytes()).hexdigest(), size=path.stat().st_size)
        )
    await bus.publish(
        ArtifactSubmitted(
            artifact_id=artifact_id,
            kind=ArtifactKind.ADAPTER,
            name=name,
            uri=store.url_of(f"artifacts/{artifact_id}"),
            files=files,
            parents=[ParentRef(artifact_id=base_model, relation=LineageRelation.TRAINED_FROM)],
            created_by="alice",
            metrics={"eval_loss": 1.0},  # as a training job reports it: the policy's staging threshold reads it
            metadata={"method": "lora", "base_model": base_model},
        )
    )
    await registered(registry, artifact_id)
    return artifact_id


async def deploy(bus: Bus, inference: httpx.AsyncClient, base_model: str, adapters: list[str]) -> dict[str, Any]:
    """Send Deploy as the gateway does and wait until the deployment is ready or failed; its view."""
    name = f"dep-{uuid.uuid4().hex[:8]}"
    await bus.publish(Deploy(name=name, base_model=base_model, adapters=adapters, requested_by="alice"))
    return await settled(inference, name)


async def settled(
    inference: httpx.AsyncClient, name: str, statuses: tuple[str, ...] = ("ready", "failed")
) -> dict[str, Any]:
    """The deployment's view on `inference` once its status is one of `statuses`."""
    async with asyncio.timeout(WAIT_S):
        while True:
            response = await inference.get(f"/v1/deployments/{name}")
            if response.status_code == 200 and response.json()["status"] in statuses:
                return dict(response.json())
            await asyncio.sleep(0.1)


def reference(base: Path, adapter: Path | None, prompt: str, max_tokens: int) -> str:
    """Greedy text from `PeftModel.generate` (or the base model's), one prompt at a time."""
    tokenizer = AutoTokenizer.from_pretrained(base)
    model: Any = AutoModelForCausalLM.from_pretrained(base).eval()
    if adapter:
        model = PeftModel.from_pretrained(model, adapter).eval()
    ids = tokenizer(prompt, return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=max_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id)[
        0, ids["input_ids"].shape[1] :
    ]
    return str(tokenizer.decode(out, skip_special_tokens=True))
