"""Prompt log-probabilities (OpenAI's `echo` with `logprobs`): how lm-evaluation-harness and the evaluator measure a
log-likelihood through the API. One forward pass over the prompt on the model thread gives every prompt token's
log-probability and the likeliest tokens at each position; the greedy next token comes from the last position, when
one is asked for. The scheduler is not involved: nothing is generated past that token."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .backend import Backend


@dataclass(frozen=True)
class Scored:
    """Per token of the prompt (and the next one, if asked): its id, its log-probability (None for the first, which
    nothing predicts), and the `top` likeliest ids at its position with theirs."""

    tokens: list[int]
    logprobs: list[float | None]
    top: list[dict[int, float] | None]


async def score(backend: Backend, prompt: list[int], adapter: str | None, *, top: int, next_token: bool) -> Scored:
    """Score `prompt` under the adapter (already acquired by the caller)."""
    return await backend.run(lambda: _score(backend, prompt, adapter, top, next_token))


def _score(backend: Backend, prompt: list[int], adapter: str | None, top: int, next_token: bool) -> Scored:
    logprobs = torch.log_softmax(backend.logits(torch.tensor([prompt]), adapter)[0], dim=-1)
    tokens = list(prompt)
    if next_token:
        tokens.append(int(logprobs[-1].argmax()))
    chosen: list[float | None] = [None]
    alternatives: list[dict[int, float] | None] = [None]
    for position in range(1, len(tokens)):
        row = logprobs[position - 1]
        chosen.append(float(row[tokens[position]]))
        if top:
            values, ids = row.topk(top)
            alternatives.append({int(i): float(v) for i, v in zip(ids, values, strict=True)})
        else:
            alternatives.append({})
    return Scored(tokens, chosen, alternatives)
