"""The continuous-batching scheduler on the tiny Llama: prompts of very different lengths admitted together are
prefilled in groups of similar lengths, and every completion equals the one the prompt gets alone."""

from __future__ import annotations

import asyncio
from pathlib import Path

import torch
from modelops_inference.backend import TransformersBackend
from modelops_inference.batching import Finish, Scheduler, Sequence
from modelops_inference.sampling import SamplingParams
from modelops_trainer.base_model import build_base_model

PROMPTS = [[5] * 3, [7, 8] * 20, [9] * 4, [11, 12, 13] * 9, [14] * 38]


async def _complete(scheduler: Scheduler, prompts: list[list[int]]) -> list[list[int]]:
    """Submit every prompt before the scheduler's next step; each one's greedy tokens."""
    sequences = [Sequence(prompt, None, SamplingParams(6, temperature=0), "test", "base") for prompt in prompts]
    for seq in sequences:
        scheduler.submit(seq)

    async def tokens(seq: Sequence) -> list[int]:
        out = []
        while not isinstance(item := await seq.events.get(), Finish):
            out.append(item)
        assert item.reason == "length", item
        return out

    return list(await asyncio.gather(*(tokens(seq) for seq in sequences)))


async def test_prompts_of_different_lengths_prefill_in_groups_with_the_same_completions(tmp_path: Path) -> None:
    build_base_model(tmp_path, 0)
    backend = TransformersBackend("base", tmp_path, torch.device("cpu"), max_adapters=1)
    passes: list[tuple[int, int]] = []  # (rows, positions) of every prefill pass
    forward = backend.forward

    def counting(ids: torch.Tensor, *args: object) -> object:
        if ids.shape[1] > 1:
            passes.append(tuple(ids.shape))
        return forward(ids, *args)  # type: ignore[arg-type]

    backend.forward = counting  # type: ignore[method-assign,assignment]
    scheduler = Scheduler(backend, max_batch=8, max_queue=8)
    scheduler.start()
    try:
        alone = [(await _complete(scheduler, [prompt]))[0] for prompt in PROMPTS]
        passes.clear()
        together = await _complete(scheduler, PROMPTS)
    finally:
        await scheduler.stop()
        await backend.close()
    assert together == alone
    # Sorted by length: 3 and 4 tokens together, then 27, 38 and 40 (padding within a quarter of the real tokens).
    assert passes == [(2, 4), (3, 40)]
