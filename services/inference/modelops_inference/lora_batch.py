"""Rows of many LoRA adapters in one forward pass, as two batched matmuls per LoRA layer.

PEFT's mixed-adapter batch (`adapter_names`) runs every LoRA layer once per distinct adapter in the batch, on that
adapter's rows: an index, two small matmuls and a scatter each. With 16 adapters among 16 rows a decode step is
thousands of tiny operations, and the batch keeps a fraction of one adapter's tokens/s (bench/inference.py). Here
each LoRA layer keeps the loaded adapters' A and B stacked, one slot each (B scaled; slot 0 stays zero, for base
rows and for adapters that do not target the layer); a pass gathers each row's pair and applies it with `bmm`, the
same few operations however many adapters share the batch. The base model runs as PEFT runs it with its adapter
layers disabled (switched when the kind of batch changes, not per pass: PEFT's `disable_adapter` context inspects
the whole model each time), and a forward hook on each LoRA layer adds the rows' deltas.

Plain LoRA on linear layers only: while any loaded adapter is something else (DoRA or another variant, LoRA on
embeddings or convolutions, fan-in-fan-out weights, LoRA biases), `usable` is False and PEFT's own path runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from peft import PeftModel
from peft.tuners.lora import Linear as LoraLinear
from peft.tuners.lora import LoraLayer
from torch.utils.hooks import RemovableHandle


class BatchedLora:
    """The stacked adapters of one PeftModel; `add` and `remove` follow its loads and deletions."""

    def __init__(self, model: PeftModel) -> None:
        self.model = model
        self._tuner: Any = model.base_model  # PEFT's LoraModel: switches its adapter layers on and off
        self.slots: dict[str, int] = {}  # adapter name → its slot in every stack
        self.usable = True
        self._stacks: dict[Any, tuple[torch.Tensor, torch.Tensor]] = {}  # layer → A, B
        self._hooks: list[RemovableHandle] = []
        self._capacity = 1  # slots in every stack, slot 0 included
        self._rows: torch.Tensor | None = None
        self._layers_off = False  # PEFT's own adapter layers disabled, for this class's passes

    def add(self, name: str) -> None:
        """Stack the adapter PEFT just loaded as `name`."""
        free = sorted(set(range(1, self._capacity)) - set(self.slots.values()))
        if not free:
            self._grow(2 * self._capacity)
            free = [self._capacity // 2]
        self.slots[name] = free[0]
        layers = self._lora_layers()
        for layer in layers:
            if name in layer.lora_A:
                self._write(layer, name)
        self._refresh(layers)

    def remove(self, name: str) -> None:
        """Unstack `name` (PEFT has deleted it)."""
        slot = self.slots.pop(name, None)
        if slot is None:
            return
        for a, b in self._stacks.values():
            a[slot].zero_()
            b[slot].zero_()
        self._refresh(self._lora_layers())

    def close(self) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks, self._stacks = [], {}

    def single(self) -> None:
        """PEFT's own adapter layers run the next passes (one active adapter, or `adapter_names`)."""
        if self._layers_off:
            self._tuner.enable_adapter_layers()
            self._layers_off = False

    @contextmanager
    def rows(self, adapters: list[str | None]) -> Iterator[None]:
        """Within the block, a forward pass applies adapter `adapters[i]` (None: none) to row i."""
        if not self._layers_off:
            self._tuner.disable_adapter_layers()
            self._layers_off = True
        slots = [self.slots[name] if name is not None else 0 for name in adapters]
        self._rows = torch.tensor(slots, dtype=torch.long, device=self.model.device)
        try:
            yield
        finally:
            self._rows = None

    def _lora_layers(self) -> list[Any]:
        return [module for module in self.model.modules() if isinstance(module, LoraLayer)]

    def _refresh(self, layers: list[Any]) -> None:
        """Whether every LoRA layer can run here; PEFT's own layers enabled again (a new layer comes enabled)."""
        self.usable = all(_plain(layer) for layer in layers)
        self._layers_off = False
        self._tuner.enable_adapter_layers()

    @torch.no_grad()
    def _write(self, layer: Any, name: str) -> None:
        rank = layer.r[name]
        if layer not in self._stacks or self._stacks[layer][0].shape[1] < rank:
            self._allocate(layer, rank)
        a, b = self._stacks[layer]
        slot = self.slots[name]
        a[slot].zero_()
        b[slot].zero_()
        a[slot, :rank] = layer.lora_A[name].weight
        b[slot, :, :rank] = layer.lora_B[name].weight * layer.scaling[name]

    def _allocate(self, layer: Any, rank: int) -> None:
        """The layer's stacks at `rank` (its adapters' lower ranks zero-padded), hooked on first use."""
        base = layer.get_base_layer()
        like = layer.lora_A[next(iter(layer.lora_A))].weight
        a = like.new_zeros(self._capacity, rank, base.in_features)
        b = like.new_zeros(self._capacity, base.out_features, rank)
        if layer in self._stacks:
            old_a, old_b = self._stacks[layer]
            a[:, : old_a.shape[1]] = old_a
            b[:, :, : old_b.shape[2]] = old_b
        else:
            self._hooks.append(layer.register_forward_hook(self._add_rows_deltas))
        self._stacks[layer] = (a, b)

    def _grow(self, capacity: int) -> None:
        for layer, (a, b) in self._stacks.items():
            more = capacity - a.shape[0]
            self._stacks[layer] = (
                torch.cat([a, a.new_zeros(more, *a.shape[1:])]),
                torch.cat([b, b.new_zeros(more, *b.shape[1:])]),
            )
        self._capacity = capacity

    def _add_rows_deltas(self, layer: Any, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> Any:
        if self._rows is None:
            return None
        a, b = self._stacks[layer]
        x = inputs[0]
        flat = x.reshape(x.shape[0], -1, x.shape[-1]).to(a.dtype)  # (rows, positions, in)
        delta = torch.bmm(torch.bmm(flat, a[self._rows].transpose(1, 2)), b[self._rows].transpose(1, 2))
        return output + delta.reshape(output.shape).to(output.dtype)


def _plain(layer: Any) -> bool:
    """Vanilla LoRA on a linear layer: A and B and a scale, nothing else."""
    return (
        isinstance(layer, LoraLinear)
        and not layer.fan_in_fan_out
        and not layer.lora_variant
        and not any(layer.lora_bias.values())
    )
