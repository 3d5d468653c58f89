"""The growing KV cache holds what transformers' DynamicCache holds, step by step, while it writes decode steps in
place."""

from __future__ import annotations

import torch
from modelops_inference.kv_cache import SPARE_POSITIONS, growing_cache
from transformers import DynamicCache


def _step(rows: int, positions: int) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(rows, 3, positions, 8), torch.randn(rows, 3, positions, 8)


def test_it_holds_what_a_dynamic_cache_holds_and_decodes_in_place() -> None:
    ours, theirs = growing_cache(), DynamicCache()
    prefill = _step(4, 5)
    ours.update(*prefill, 0)
    theirs.update(*prefill, 0)
    moved = 0
    for _ in range(2 * SPARE_POSITIONS):
        before = ours.layers[0].keys.data_ptr()
        token = _step(4, 1)
        keys, values = ours.update(*token, 0)
        expected_keys, expected_values = theirs.update(*token, 0)
        assert torch.equal(keys, expected_keys)
        assert torch.equal(values, expected_values)
        moved += keys.data_ptr() != before
    assert ours.get_seq_length() == 5 + 2 * SPARE_POSITIONS
    assert moved <= 2  # copied only when the spare positions ran out, not every step as DynamicLayer does


def test_it_continues_from_tensors_the_scheduler_replaced() -> None:
    ours, theirs = growing_cache(), DynamicCache()
    prefill = _step(4, 6)
    ours.update(*prefill, 0)
    theirs.update(*prefill, 0)
    for cache in (ours, theirs):  # a row dropped and a padding column trimmed, as Scheduler._drop does
        layer = cache.layers[0]
        keep = torch.tensor([0, 2, 3])
        layer.keys, layer.values = layer.keys[keep, :, 1:], layer.values[keep, :, 1:]
    token = _step(3, 1)
    keys, values = ours.update(*token, 0)
    expected_keys, expected_values = theirs.update(*token, 0)
    assert keys.shape == (3, 3, 6, 8)
    assert torch.equal(keys, expected_keys)
    assert torch.equal(values, expected_values)
