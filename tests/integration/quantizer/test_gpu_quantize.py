"""AWQ and GPTQ on a GPU (skipped elsewhere): a quantization job on SmolLM2 makes both through llm-compressor in its
own interpreter, each a signed quantized_model with its perplexity change, size and speed; vLLM serves each and
answers. Run by services/quantizer/scripts/gpu_quantize.sh on a GPU machine."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import torch
from helpers import TopicTap, registered
from modelops_contracts import (
    ArtifactKind,
    QuantizationCancelled,
    QuantizationCompleted,
    QuantizationFailed,
    QuantizationFormat,
    StartQuantization,
)
from modelops_inference.settings import InferenceSettings
from modelops_inference.vllm import VllmBackend
from modelops_quantizer.app import create_app
from modelops_quantizer.settings import QuantizerSettings
from modelops_shared.artifacts import ArtifactClient
from modelops_shared.bus import Bus

COMPRESSOR = os.environ.get("MODELOPS_QUANTIZER_COMPRESSOR_PYTHON", "")
VLLM = os.environ.get("MODELOPS_INFERENCE_VLLM_PYTHON") or sys.executable
FORMATS = [QuantizationFormat.AWQ_W4A16, QuantizationFormat.GPTQ_W4A16]


def _runs_here() -> bool:
    if not (torch.cuda.is_available() and COMPRESSOR):
        return False
    return subprocess.run([COMPRESSOR, "-c", "import llmcompressor"], capture_output=True).returncode == 0


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not _runs_here(), reason="needs a CUDA device and llm-compressor (MODELOPS_QUANTIZER_COMPRESSOR_PYTHON)"
    ),
]


@pytest.fixture
async def gpu_quantizer(quantizer_settings: QuantizerSettings) -> AsyncIterator[QuantizerSettings]:
    settings = quantizer_settings.model_copy(update={"quantizer_compressor_python": Path(COMPRESSOR)})
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield settings


async def test_awq_and_gptq_are_made_measured_signed_and_served_by_vllm(
    gpu_quantizer, smollm2_base_model, smollm2_adapter, bus: Bus, events: TopicTap, registry, tmp_path
):
    spec = StartQuantization(
        job_id=f"qjob-gpu-{uuid.uuid4().hex[:12]}",
        submitted_by="alice",
        model=smollm2_base_model,
        adapter=smollm2_adapter,
        formats=FORMATS,
    )
    await bus.publish(spec)
    completed = await events.first(
        spec.job_id, QuantizationCompleted, QuantizationFailed, QuantizationCancelled, timeout=1800
    )
    assert isinstance(completed, QuantizationCompleted), completed
    for output in completed.outputs:
        metrics = output.metrics
        print(f"{output.format}: {metrics}")  # the figures the closing note quotes
        # 4-bit weights in groups of 64 on a 135M model, calibrated on a short text: GPTQ measured +28 % (a CPU run of
        # compress.py); a sanity bound, not a quality claim.
        assert abs(metrics["perplexity_change"]) < 0.5, metrics
        assert metrics["size_ratio_f16"] < 0.6, metrics
        record = await registered(registry, output.artifact_id)
        assert (record["kind"], record["metadata"]["format"], record["metadata"]["serving"]) == (
            "quantized_model",
            str(output.format),
            "vllm",
        )
        async with ArtifactClient.from_settings(gpu_quantizer, tmp_path / "cache") as artifacts:
            verified = await artifacts.fetch(output.artifact_id, ArtifactKind.QUANTIZED_MODEL)
        settings = InferenceSettings(
            inference_vllm_python=VLLM,
            inference_vllm_args="--max-model-len 1024 --gpu-memory-utilization 0.3 --enforce-eager",
        )
        backend = await VllmBackend.launch(output.artifact_id, verified.path, settings)
        try:
            body = {
                "messages": [{"role": "user", "content": "What is the capital of France? Answer in one word."}],
                "max_tokens": 12,
                "temperature": 0,
            }
            answer = await backend.complete("/v1/chat/completions", body, None, output.artifact_id)
        finally:
            await backend.close()
        print(f"{output.format} on vLLM: {answer['choices'][0]['message']['content']!r}")
        assert answer["choices"][0]["message"]["content"].strip()
