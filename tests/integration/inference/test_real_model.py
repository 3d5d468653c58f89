"""The real pretrained model served: SmolLM2-135M-Instruct, converted from its GGUF, registered as a base model,
deployed on the inference service, asked a general question through the OpenAI chat API, and asked to score a prompt
(`echo` with `logprobs`)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import torch
from modelops_shared.bus import Bus
from modelops_trainer.gguf_import import GgufInfo
from transformers import AutoModelForCausalLM, AutoTokenizer

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


async def test_echo_with_logprobs_scores_the_prompt_as_transformers_does(
    bus: Bus, inference: httpx.AsyncClient, smollm2_base_model: str, smollm2_dir: tuple[GgufInfo, Path]
) -> None:
    """What lm-evaluation-harness sends for a log-likelihood: the prompt echoed with each token's log-probability
    (the first has none), the likeliest token at each position, and one greedy token after it."""
    deployment = await deploy(bus, inference, smollm2_base_model, [])
    text = "The capital of France is Paris"
    body = {"model": deployment["name"], "prompt": text, "echo": True, "logprobs": 1, "max_tokens": 1, "temperature": 0}
    answer = await inference.post("/v1/completions", json=body)
    assert answer.status_code == 200, answer.text
    (choice,) = answer.json()["choices"]
    scored = choice["logprobs"]
    ids = AutoTokenizer.from_pretrained(smollm2_dir[1])(text)["input_ids"]
    assert len(scored["tokens"]) == len(ids) + 1
    assert scored["token_logprobs"][0] is None
    assert scored["top_logprobs"][0] is None
    assert choice["text"].startswith(text)
    assert "".join(scored["tokens"]) == choice["text"]
    model = AutoModelForCausalLM.from_pretrained(smollm2_dir[1], dtype=torch.float32)
    with torch.no_grad():
        logprobs = torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), dim=-1)
    expected = [float(logprobs[i - 1, ids[i]]) for i in range(1, len(ids))]
    assert scored["token_logprobs"][1 : len(ids)] == pytest.approx(expected, abs=1e-3)
    # The generated token is the greedy one: its logprob is the best at its position.
    assert scored["token_logprobs"][-1] == pytest.approx(max(scored["top_logprobs"][-1].values()))

    for refused in ({"max_tokens": 16}, {"stream": True}, {"temperature": 0.7}):
        bad = await inference.post("/v1/completions", json={**body, **refused})
        assert bad.status_code == 400, bad.text
        assert bad.json()["type"].endswith("logprobs-for-scoring-only")
