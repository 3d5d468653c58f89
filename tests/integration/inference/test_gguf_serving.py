"""GGUF quantized models served by llama.cpp through the same OpenAI API: SmolLM2 written as Q4_K_M by llama.cpp's
tools, registered as a quantized_model and deployed (the deployment picks llama.cpp from the artifact's kind), chat
answered with and without streaming; a GGUF LoRA riding on it changes the answers; a tampered GGUF is refused."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import registered
from modelops_contracts import ArtifactKind, ArtifactSubmitted, FileDigest, QuantizationFormat
from modelops_quantizer import toolchain
from modelops_shared.bus import Bus
from modelops_shared.settings import Settings
from modelops_shared.storage import open_store
from modelops_trainer.gguf_import import GgufInfo

from .support import deploy, make_adapter

QUESTION = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]


@pytest.fixture(scope="module")
def gguf_files(smollm2_dir: tuple[GgufInfo, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """SmolLM2 as Q4_K_M, and a LoRA of it (random, so that it changes answers visibly) as a GGUF LoRA."""
    directory, out = smollm2_dir[1], tmp_path_factory.mktemp("gguf")
    toolchain.convert_model(directory, out / "F16.gguf")
    toolchain.quantize(out / "F16.gguf", out / "Q4_K_M.gguf", QuantizationFormat.Q4_K_M, threads=2)
    make_adapter(directory, out / "lora", seed=3)
    toolchain.convert_lora(out / "lora", directory, out / "lora.gguf")
    return {"model": out / "Q4_K_M.gguf", "lora": out / "lora.gguf"}


async def submit_gguf(
    settings: Settings, bus: Bus, registry: httpx.AsyncClient, path: Path, base_model: str, role: str
) -> str:
    """The file as the quantizer submits a format: one model.gguf, its role, the base it was made from."""
    artifact_id = f"gguf-{role}-{uuid.uuid4().hex[:8]}"
    store = open_store(settings.store_url, settings)
    await store.put(f"artifacts/{artifact_id}/model.gguf", path)
    sha256, size = await store.sha256(f"artifacts/{artifact_id}/model.gguf")
    digest = FileDigest(path="model.gguf", sha256=sha256, size=size)
    await bus.publish(
        ArtifactSubmitted(
            artifact_id=artifact_id,
            kind=ArtifactKind.QUANTIZED_MODEL,
            name=artifact_id,
            uri=store.url_of(f"artifacts/{artifact_id}"),
            files=[digest],
            created_by="alice",
            metadata={"format": "Q4_K_M" if role == "model" else "LORA_F16", "role": role, "base_model": base_model},
        )
    )
    await registered(registry, artifact_id)
    return artifact_id


async def chat(inference: httpx.AsyncClient, model: str, **extra: Any) -> httpx.Response:
    body = {"model": model, "messages": QUESTION, "max_tokens": 12, "temperature": 0, **extra}
    return await inference.post("/v1/chat/completions", json=body)


async def test_a_q4_k_m_gguf_is_served_by_llama_cpp_streaming_included(
    embedded_stack, bus, registry, inference, smollm2_base_model, gguf_files
):
    model = await submit_gguf(embedded_stack, bus, registry, gguf_files["model"], smollm2_base_model, "model")
    deployment = await deploy(bus, inference, model, [])
    assert deployment["status"] == "ready", deployment

    answer = await chat(inference, deployment["name"])
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert "Paris" in body["choices"][0]["message"]["content"]
    assert body["model"] == deployment["name"]
    assert body["usage"]["prompt_tokens"] > 0
    assert body["usage"]["completion_tokens"] > 0

    async with inference.stream(
        "POST",
        "/v1/chat/completions",
        json={"model": deployment["name"], "messages": QUESTION, "max_tokens": 12, "temperature": 0, "stream": True},
    ) as streamed:
        assert streamed.status_code == 200
        lines = [line async for line in streamed.aiter_lines() if line.startswith("data:")]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line[5:]) for line in lines[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == body["choices"][0]["message"]["content"]  # the same greedy answer, streamed
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["prompt_tokens"] == body["usage"]["prompt_tokens"]


async def test_a_gguf_lora_rides_on_the_gguf_model_and_changes_its_answers(
    embedded_stack, bus, registry, inference, smollm2_base_model, gguf_files
):
    model = await submit_gguf(embedded_stack, bus, registry, gguf_files["model"], smollm2_base_model, "model")
    lora = await submit_gguf(embedded_stack, bus, registry, gguf_files["lora"], smollm2_base_model, "lora")
    deployment = await deploy(bus, inference, model, [lora])
    assert deployment["status"] == "ready", deployment
    with_lora = (await chat(inference, deployment["name"])).json()["choices"][0]["message"]["content"]
    plain = await deploy(bus, inference, model, [])
    without = (await chat(inference, plain["name"])).json()["choices"][0]["message"]["content"]
    assert with_lora != without
    # Back and forth on one context: the cache computed under the LoRA is not reused without it.
    assert (await chat(inference, deployment["name"])).json()["choices"][0]["message"]["content"] == with_lora
    assert (await chat(inference, plain["name"])).json()["choices"][0]["message"]["content"] == without


async def test_a_tampered_gguf_is_refused_at_deploy(
    embedded_stack, bus, registry, inference, smollm2_base_model, gguf_files
):
    model = await submit_gguf(embedded_stack, bus, registry, gguf_files["model"], smollm2_base_model, "model")
    store = open_store(embedded_stack.store_url, embedded_stack)
    tampered = bytearray(await store.get(f"artifacts/{model}/model.gguf"))
    tampered[len(tampered) // 2] ^= 0xFF
    await store.put(f"artifacts/{model}/model.gguf", bytes(tampered))
    deployment = await deploy(bus, inference, model, [])
    assert deployment["status"] == "failed"
    assert "digest" in deployment["reason"] or "sha256" in deployment["reason"], deployment["reason"]


async def test_a_gguf_lora_is_not_a_model_to_deploy(
    embedded_stack, bus, registry, inference, smollm2_base_model, gguf_files
):
    lora = await submit_gguf(embedded_stack, bus, registry, gguf_files["lora"], smollm2_base_model, "lora")
    deployment = await deploy(bus, inference, lora, [])
    assert deployment["status"] == "failed"
    assert "GGUF LoRA" in deployment["reason"]


async def test_an_awq_model_is_refused_by_a_replica_without_vllm(embedded_stack, bus, registry, inference):
    """compressed-tensors (AWQ, GPTQ) is vLLM's to serve on a CUDA GPU: a transformers replica says so."""
    artifact_id = f"awq-{uuid.uuid4().hex[:8]}"
    store = open_store(embedded_stack.store_url, embedded_stack)
    config = json.dumps({"architectures": ["LlamaForCausalLM"], "quantization_config": {"format": "pack-quantized"}})
    await store.put(f"artifacts/{artifact_id}/config.json", config.encode())
    sha256, size = await store.sha256(f"artifacts/{artifact_id}/config.json")
    await bus.publish(
        ArtifactSubmitted(
            artifact_id=artifact_id,
            kind=ArtifactKind.QUANTIZED_MODEL,
            name=artifact_id,
            uri=store.url_of(f"artifacts/{artifact_id}"),
            files=[FileDigest(path="config.json", sha256=sha256, size=size)],
            created_by="alice",
            metadata={"format": str(QuantizationFormat.AWQ_W4A16), "role": "model", "serving": "vllm"},
        )
    )
    await registered(registry, artifact_id)
    deployment = await deploy(bus, inference, artifact_id, [])
    assert deployment["status"] == "failed"
    assert "vLLM on a CUDA GPU serves it" in deployment["reason"], deployment["reason"]
