"""The real pretrained model served: SmolLM2-135M-Instruct, converted from its GGUF, registered as a base model,
deployed on the inference service, and asked a general question through the OpenAI chat API."""

from __future__ import annotations

import httpx
from modelops_shared.bus import Bus

from .support import deploy


async def test_smollm2_answers_a_general_question_through_the_openai_api(
    bus: Bus, inference: httpx.AsyncClient, smollm2_base_model: str
) -> None:
    artifact_id = smollm2_base_model
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
