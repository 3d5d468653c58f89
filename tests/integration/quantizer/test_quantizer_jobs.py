"""Quantization jobs over Kafka on the real SmolLM2-135M-Instruct with a LoRA adapter: merged and written as GGUF by
llama.cpp, each format measured and registered as a signed quantized_model; cancels, refusals and a killed worker."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from helpers import TopicTap, registered, spawn_service
from llama_cpp import Llama
from modelops_contracts import (
    ArtifactKind,
    ArtifactSubmitted,
    CancelQuantization,
    QuantizationCancelled,
    QuantizationCompleted,
    QuantizationFailed,
    QuantizationFormat,
    QuantizationProgressed,
    QuantizationStarted,
    StartQuantization,
)
from modelops_quantizer.app import create_app
from modelops_quantizer.jobs import output_artifact_id
from modelops_quantizer.settings import QuantizerSettings
from modelops_shared.artifacts import ArtifactClient
from modelops_shared.bus import Bus

ENDED = (QuantizationCompleted, QuantizationFailed, QuantizationCancelled)
JOB_S = 600.0


@pytest.fixture
async def quantizer(quantizer_settings: QuantizerSettings) -> AsyncIterator[None]:
    """One quantizer worker in this process (HTTP app lifespan: runtime, cancel watcher, job consumer), stopped after
    the test: every group reads every command, and a test's own workers must be the only ones of theirs."""
    app = create_app(quantizer_settings)
    async with app.router.lifespan_context(app):
        yield


def job(model: str, adapter: str | None, *formats: QuantizationFormat) -> StartQuantization:
    job_id = f"qjob-{uuid.uuid4().hex[:12]}"
    return StartQuantization(job_id=job_id, submitted_by="alice", model=model, adapter=adapter, formats=list(formats))


async def test_an_adapter_becomes_signed_measured_ggufs_that_llama_cpp_serves(
    quantizer, smollm2_base_model, smollm2_adapter, bus: Bus, events: TopicTap, registry, quantizer_settings, tmp_path
):
    spec = job(
        smollm2_base_model,
        smollm2_adapter,
        QuantizationFormat.Q8_0,
        QuantizationFormat.Q4_K_M,
        QuantizationFormat.LORA_F16,
    )
    await bus.publish(spec)

    completed = await events.first(spec.job_id, *ENDED, timeout=JOB_S)
    assert isinstance(completed, QuantizationCompleted), completed
    outputs = {output.format: output for output in completed.outputs}
    assert list(outputs) == spec.formats
    q8, q4, lora = (outputs[fmt].metrics for fmt in spec.formats)
    # Quality against the merged model's own F16 GGUF, on the held-out text (published: Q8_0 +0.1-0.4 %, Q4_K_M +2-3 %)
    assert q8["perplexity_reference"] == q4["perplexity_reference"] == lora["perplexity_reference"]
    assert abs(q8["perplexity_change"]) < 0.01, q8
    assert abs(q4["perplexity_change"]) < 0.05, q4
    assert q8["size_ratio_f16"] < 0.6
    assert q4["size_ratio_f16"] < q8["size_ratio_f16"]
    # The LoRA applied at run time over the base's F16 gives the merged model's perplexity: the merge is right.
    assert abs(lora["perplexity_change"]) < 1e-3, lora
    assert all(m["tokens_per_second"] > 0 for m in (q8, q4, lora))

    for fmt, output in outputs.items():
        assert output.artifact_id == output_artifact_id(spec.job_id, fmt)
        record = await registered(registry, output.artifact_id)
        assert record["kind"] == "quantized_model"
        assert record["metadata"]["format"] == fmt
        files = (await registry.get(f"/v1/artifacts/{output.artifact_id}/files")).json()
        assert [f["path"] for f in files] == ["model.gguf"]
        lineage = (await registry.get(f"/v1/artifacts/{output.artifact_id}/lineage")).json()
        parents = {(e["parent_id"], e["relation"]) for e in lineage["ancestors"] if e["child_id"] == output.artifact_id}
        assert parents == {(smollm2_base_model, "quantized_from"), (smollm2_adapter, "merged_from")}

    # Verified like any artifact before it is loaded, and llama.cpp runs it.
    async with ArtifactClient.from_settings(quantizer_settings, tmp_path / "cache") as artifacts:
        verified = await artifacts.fetch(outputs[QuantizationFormat.Q4_K_M].artifact_id, ArtifactKind.QUANTIZED_MODEL)
    llm = Llama(model_path=str(verified.path / "model.gguf"), n_ctx=256, verbose=False)
    answer = llm.create_chat_completion(
        [{"role": "user", "content": "What is the capital of France? Answer in one word."}],
        max_tokens=12,
        temperature=0,
    )
    llm.close()
    assert "Paris" in answer["choices"][0]["message"]["content"]


async def test_a_job_cancelled_while_it_runs_ends_cancelled(quantizer, smollm2_base_model, bus: Bus, events: TopicTap):
    spec = job(smollm2_base_model, None, QuantizationFormat.Q8_0, QuantizationFormat.Q4_K_M)
    await bus.publish(spec)
    await events.first(spec.job_id, QuantizationStarted, timeout=JOB_S)
    await bus.publish(CancelQuantization(job_id=spec.job_id, requested_by="alice", reason="wrong formats"))
    ended = await events.first(spec.job_id, *ENDED, timeout=JOB_S)
    assert isinstance(ended, QuantizationCancelled), ended
    assert ended.reason == "wrong formats"
    assert not events.of(spec.job_id, QuantizationCompleted)


@pytest.mark.parametrize(
    "formats",
    [[QuantizationFormat.GPTQ_W4A16], [QuantizationFormat.Q8_0, QuantizationFormat.AWQ_W4A16]],
    ids=["gptq", "gguf-and-awq"],
)
async def test_awq_and_gptq_fail_at_once_on_a_worker_without_cuda(
    quantizer, smollm2_base_model, bus: Bus, events: TopicTap, formats
):
    spec = job(smollm2_base_model, None, *formats)
    await bus.publish(spec)
    failed = await events.first(spec.job_id, *ENDED, timeout=JOB_S)
    assert isinstance(failed, QuantizationFailed), failed
    assert failed.error_type == "needs_cuda"
    assert "needs a CUDA GPU" in failed.reason
    assert not events.of(spec.job_id, QuantizationStarted)  # nothing fetched, nothing made


async def test_an_adapter_of_another_base_is_refused(
    quantizer, base_model, smollm2_adapter, bus: Bus, events: TopicTap
):
    spec = job(base_model, smollm2_adapter, QuantizationFormat.Q8_0)
    await bus.publish(spec)
    failed = await events.first(spec.job_id, *ENDED, timeout=JOB_S)
    assert isinstance(failed, QuantizationFailed), failed
    assert failed.error_type == "input_unusable"
    assert "trained on" in failed.reason


async def test_a_model_llama_cpp_cannot_convert_fails_the_job_with_the_reason(
    quantizer, base_model, bus: Bus, events: TopicTap
):
    """The tiny test model's home-made BPE vocabulary is not one llama.cpp's converter knows."""
    spec = job(base_model, None, QuantizationFormat.Q8_0)
    await bus.publish(spec)
    failed = await events.first(spec.job_id, *ENDED, timeout=JOB_S)
    assert isinstance(failed, QuantizationFailed), failed
    assert failed.error_type == "conversion_failed"
    assert "pre-tokenizer was not recognized" in failed.reason


async def test_a_killed_worker_s_job_resumes_elsewhere_with_the_formats_already_stored(
    smollm2_base_model, bus: Bus, events: TopicTap, quantizer_settings, worker_processes, tmp_path: Path
):
    def spawn(name: str) -> None:
        settings = {
            "registry_url": quantizer_settings.registry_url,
            "quantizer_schema": f"{quantizer_settings.quantizer_schema}_kill",
            "quantizer_group": f"{quantizer_settings.quantizer_group}-kill",
            "quantizer_work_dir": str(quantizer_settings.work_dir / name),
            "quantizer_worker_id": name,
            "quantizer_speed_tokens": "16",
        }
        worker_processes.append(spawn_service("quantizer", settings, tmp_path / f"{name}.log"))

    spec = job(smollm2_base_model, None, QuantizationFormat.Q8_0, QuantizationFormat.Q4_K_M)
    spawn("worker-a")
    await bus.publish(spec)
    # Q4_K_M is being made: Q8_0 is stored. Kill the worker the way the OOM killer would.
    async with asyncio.timeout(JOB_S):
        while not any(p.format == QuantizationFormat.Q4_K_M for p in events.of(spec.job_id, QuantizationProgressed)):
            await asyncio.sleep(0.1)
    worker_processes[0].send_signal(signal.SIGKILL)
    worker_processes[0].wait(30)
    assert not events.of(spec.job_id, *ENDED)

    spawn("worker-b")
    completed = await events.first(spec.job_id, *ENDED, timeout=JOB_S)
    assert isinstance(completed, QuantizationCompleted), completed
    starts = events.of(spec.job_id, QuantizationStarted)
    assert [(s.worker, s.resumed) for s in starts] == [("worker-a", []), ("worker-b", [QuantizationFormat.Q8_0])]
    submitted = [m.artifact_id for m in events.messages if isinstance(m, ArtifactSubmitted) and m.job_id == spec.job_id]
    assert sorted(submitted) == sorted(output_artifact_id(spec.job_id, fmt) for fmt in spec.formats)
