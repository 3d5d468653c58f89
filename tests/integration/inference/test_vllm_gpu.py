"""The vLLM backend against a real vLLM server on a GPU (skipped elsewhere): a LoRA adapter loaded at runtime changes
the output, greedy text equals PEFT's reference (both in float32), streaming gives the same text, and an unloaded
adapter is refused. Run by services/inference/scripts/gpu_vllm.sh on a GPU machine with vllm installed."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import torch
from modelops_inference.relay import RelayError
from modelops_inference.settings import InferenceSettings
from modelops_inference.vllm import VllmBackend

from .support import reference

PYTHON = os.environ.get("MODELOPS_INFERENCE_VLLM_PYTHON") or sys.executable
PROMPT = "the cat sat on the"
MAX_TOKENS = 8


def _vllm_runs_here() -> bool:
    if not torch.cuda.is_available():
        return False
    return subprocess.run([PYTHON, "-c", "import vllm"], capture_output=True).returncode == 0


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not _vllm_runs_here(), reason="needs a CUDA device and vllm (MODELOPS_INFERENCE_VLLM_PYTHON)"),
]


@pytest.fixture
async def vllm(base_model_dir: Path) -> AsyncIterator[VllmBackend]:
    settings = InferenceSettings(
        inference_vllm_python=PYTHON,
        inference_vllm_args="--dtype float32 --max-model-len 1024 --gpu-memory-utilization 0.3 --enforce-eager",
    )
    backend = await VllmBackend.launch("tiny-base", base_model_dir, settings)
    yield backend
    await backend.close()


async def test_runtime_lora_on_vllm_equals_peft(vllm: VllmBackend, base_model_dir: Path, model_dir: Path) -> None:
    body = {"prompt": PROMPT, "max_tokens": MAX_TOKENS, "temperature": 0}
    await vllm.acquire_adapter("adapter-1", model_dir / "adapter-1")
    vllm.release_adapter("adapter-1")
    base = (await vllm.complete("/v1/completions", body, None, "plain"))["choices"][0]["text"]
    tuned = (await vllm.complete("/v1/completions", body, "adapter-1", "dep"))["choices"][0]["text"]
    assert base != tuned
    assert base == await asyncio.to_thread(reference, base_model_dir, None, PROMPT, MAX_TOKENS)
    assert tuned == await asyncio.to_thread(reference, base_model_dir, model_dir / "adapter-1", PROMPT, MAX_TOKENS)
    chunks = [c async for c in vllm.stream("/v1/completions", body, "adapter-1", "dep")]
    assert "".join(c["choices"][0]["text"] for c in chunks if c["choices"]) == tuned
    assert chunks[-1]["usage"]["completion_tokens"] <= MAX_TOKENS
    await vllm.remove_adapter("adapter-1")
    with pytest.raises(RelayError):
        await vllm.complete("/v1/completions", body, "adapter-1", "dep")
