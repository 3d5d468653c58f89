"""The batch's KV cache: transformers' DynamicCache, except that a layer grows in place.

DynamicLayer appends each step's keys and values with `torch.cat`, which copies the whole layer every decode step.
Here a layer's keys and values are views of buffers with spare positions, so a step writes its one position in place
and the buffers are copied only when they fill (every SPARE_POSITIONS steps) or when the scheduler has replaced the
tensors (a row joined or left: those copy anyway). Measured on SmolLM2, 16 rows, CPU: mixed prompt and output lengths
(caches of a few hundred positions) 5% more tokens/s; short uniform requests the same.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

SPARE_POSITIONS = 64


class GrowingLayer(DynamicLayer):  # type: ignore[no-untyped-call]  # transformers types no cache layer
    """A DynamicLayer whose `keys` and `values` are the filled part of larger buffers."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)  # type: ignore[no-untyped-call]
        self._key_buffer: torch.Tensor | None = None
        self._value_buffer: torch.Tensor | None = None

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        filled = self.get_seq_length()
        end = filled + key_states.shape[-2]
        keys, values = self._key_buffer, self._value_buffer
        if keys is None or values is None or not self._views_of(keys, end):
            keys = self._key_buffer = _with_room(self.keys, key_states, filled, end)
            values = self._value_buffer = _with_room(self.values, value_states, filled, end)
        keys[:, :, filled:end] = key_states
        values[:, :, filled:end] = value_states
        self.keys, self.values = keys[:, :, :end], values[:, :, :end]
        return self.keys, self.values

    def _views_of(self, buffer: torch.Tensor, end: int) -> bool:
        """The tensors are still views of `buffer` (not replaced by a join or a drop), which has room up to `end`."""
        current = self.keys
        return (
            current is not None
            and current.numel() > 0
            and current.data_ptr() == buffer.data_ptr()
            and current.shape[0] == buffer.shape[0]
            and end <= buffer.shape[2]
        )


def _with_room(current: torch.Tensor | None, new: torch.Tensor, filled: int, end: int) -> torch.Tensor:
    """A buffer for `end + SPARE_POSITIONS` positions holding the `filled` ones of `current`."""
    rows, heads, _, dim = new.shape
    buffer = new.new_empty(rows, heads, end + SPARE_POSITIONS, dim)
    if filled:
        assert current is not None
        buffer[:, :, :filled] = current
    return buffer


def growing_cache() -> DynamicCache:
    """An empty cache whose layers are GrowingLayers."""
    cache = DynamicCache()
    cache.layer_class_to_replicate = GrowingLayer
    return cache
