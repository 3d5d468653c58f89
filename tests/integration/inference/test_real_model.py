"""The real pretrained model served: SmolLM2-135M-Instruct, converted from its GGUF, registered as a base model,
deployed on the inference service, and asked a general question through the OpenAI chat API."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
from helpers import registered
from modelops_contracts import ArtifactKind, ArtifactSubmitted
from modelops_shared.artifact_upload import upload_directory
from modelops_shared.bus import Bus
from modelops_shared.settings import Settings
from modelops_shared.storage import open_store
from modelops_trainer.gguf_import import GgufInfo, smollm2

from .support import deploy


async def test_smollm2_answers_a_general_question_through_the_openai_api(
    embedded_stack: Settings,
    bus: Bus,
    registry: httpx.AsyncClient,
    inference: httpx.AsyncClient,
    smollm2_dir: tuple[GgufInfo, Path],
) -> None:
    info, directory = smollm2_dir
    bundled = smollm2()
    artifact_id = f"smollm2-{info.sha256[:16]}"
    store = open_store(embedded_stack.store_url, embedded_stack)
    files = await upload_directory(store, directory, f"artifacts/{artifact_id}")
    await bus.publish(
        ArtifactSubmitted(
            artifact_id=artifact_id,
            kind=ArtifactKind.BASE_MODEL,
            name=f"smollm2-135m-instruct-{uuid.uuid4().hex[:6]}",
            uri=store.url_of(f"artifacts/{artifact_id}"),
            files=files,
            created_by="test",
            metadata={
                "architecture": "LlamaForCausalLM",
                "source": f"{bundled.package}=={bundled.version}",
                "gguf_sha256": info.sha256,
                "quantization": info.quantization,
                "license": info.license,
            },
        )
    )
    await registered(registry, artifact_id)
    deployment = await deploy(bus, inference, artifact_id, [])
    assert deployment["status"] == "ready", deployment
    question = "What is the capital of France? Answer in one word."
    answer = await inference.post(
        "/v1/chat/completions",
        json={
            "model": deployment["name"],
            "messages": [{"role": "user", "content": question}],
            "max_tokens": 16,
            "temperature": 0,
        },
    )
    assert answer.status_code == 200, answer.text
    assert "Paris" in answer.json()["choices"][0]["message"]["content"]
