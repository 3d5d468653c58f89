"""LoRA adapters served from per-layer stacks: loaded by reading their tensors into a free slot, and rows of many
adapters applied in one forward pass with two batched matmuls per LoRA layer.

Why not PEFT's own path: PEFT's mixed-adapter batch (`adapter_names`) runs every LoRA layer once per distinct adapter
in the batch, so 16 adapters among 16 rows make a decode step thousands of tiny operations (and it refuses DoRA); and
PEFT's load injects an adapter by walking the whole model for every target module (on SmolLM2 half of a 150-250 ms
load, bench/RESULTS.md). Here each targeted base `nn.Linear` keeps the loaded adapters' A and B stacked, one slot each
(B scaled; slot 0 stays zero, for base rows and for adapters that do not target the layer), and a forward hook adds
the rows' deltas: one adapter's rows take its pair as two plain matmuls, rows of several gather theirs and use `bmm`.
The gathered pairs are kept while the batch's rows stay the same (decode steps between joins and drops): gathering
them was a fifth of a mixed decode step on SmolLM2. A DoRA adapter also stacks its output scale per layer, magnitude
over the norm of the adapted weight's rows (computed once, at load; slot 0 and plain LoRA slots keep 1), so a DoRA row
is `scale · (W x + B A x) + bias`, as PEFT computes it.

Stacked are LoRA and DoRA on linear layers; `read_stackable` says None for anything else (the other variants, LoRA
biases, `modules_to_save`, embeddings, fan-in-fan-out weights, a config field it does not know), and the backend loads
that through PEFT, whose layers wrap the same linear layers, so the hooks keep adding their rows' deltas.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import torch
from peft import LoraConfig
from peft.utils.other import get_pattern_key
from safetensors.torch import load_file
from torch import nn

# adapter_config.json fields that either do not change what a trained adapter computes at inference (bookkeeping,
# training and initialisation settings, what the saved tensors themselves say: which modules, which ranks) or that
# `read_stackable` applies. Every other field must hold its default, so a variant PEFT adds later is not stacked by
# mistake.
_UNDERSTOOD_FIELDS = frozenset({
    "task_type", "peft_type", "auto_mapping", "peft_version", "base_model_name_or_path", "revision",
    "inference_mode", "r", "target_modules", "exclude_modules", "lora_alpha", "lora_dropout", "use_rslora",
    "init_lora_weights", "layers_to_transform", "layers_pattern", "rank_pattern", "alpha_pattern",
    "megatron_config", "megatron_core", "loftq_config", "eva_config", "corda_config", "lora_ga_config",
    "runtime_config", "qalora_group_size", "ensure_weight_tying", "use_dora",
})  # fmt: skip
_DEFAULTS = {field.name: field.default for field in dataclasses.fields(LoraConfig)}
_PREFIX = "base_model.model."  # how PEFT names the base model's modules in a saved adapter
_PARTS = {".lora_A.weight": 0, ".lora_B.weight": 1, ".lora_magnitude_vector": 2}
# The most memory the rows' gathered A and B may keep between passes (on SmolLM2, 16 rows of r=8 on four projections
# take 80 MB); a batch whose pairs would take more gathers them afresh in every pass.
GATHERED_BYTES = 256 * 2**20


class LayerAdapter(NamedTuple):
    """One adapter on one linear layer: A (r, in), scaled B (out, r), and a DoRA adapter's output scale (out)."""

    a: torch.Tensor
    b: torch.Tensor
    scale: torch.Tensor | None


class Gathered(NamedTuple):
    """One layer's stacks gathered for a batch's rows: A (rows, in, r), B (rows, r, out), DoRA scales (rows, out)."""

    a: torch.Tensor
    b: torch.Tensor
    scale: torch.Tensor | None


def read_stackable(path: Path, linears: Mapping[str, nn.Linear]) -> dict[str, LayerAdapter] | None:
    """The PEFT adapter folder at `path` per module of `linears` (by the base model's module names), or None if it is
    not LoRA or DoRA on those linear layers (or not saved as safetensors)."""
    weights = path / "adapter_model.safetensors"
    if not weights.is_file():
        return None
    config = json.loads((path / "adapter_config.json").read_text())
    if not _understood(config):
        return None
    parts: dict[str, list[torch.Tensor | None]] = {}
    for key, tensor in load_file(weights).items():
        suffix = next((suffix for suffix in _PARTS if key.startswith(_PREFIX) and key.endswith(suffix)), None)
        if suffix is None:
            return None
        parts.setdefault(key[len(_PREFIX) : -len(suffix)], [None, None, None])[_PARTS[suffix]] = tensor
    alphas: dict[str, float] = config.get("alpha_pattern") or {}
    layers: dict[str, LayerAdapter] = {}
    for module, (a, b, magnitude) in parts.items():
        linear = linears.get(module)
        if linear is None or a is None or b is None or (magnitude is None) == bool(config.get("use_dora")):
            return None
        rank = a.shape[0]
        if a.shape != (rank, linear.in_features) or b.shape != (linear.out_features, rank):
            return None
        if magnitude is not None and magnitude.shape != (linear.out_features,):
            return None
        alpha = alphas.get(get_pattern_key(list(alphas), module), config.get("lora_alpha", _DEFAULTS["lora_alpha"]))
        b = b * (alpha / math.sqrt(rank) if config.get("use_rslora") else alpha / rank)
        layers[module] = LayerAdapter(a, b, None if magnitude is None else _dora_scale(linear, a, b, magnitude))
    return layers


def _understood(config: dict[str, Any]) -> bool:
    if config.get("peft_type") != "LORA":
        return False
    return all(
        key in _UNDERSTOOD_FIELDS or (key in _DEFAULTS and (value == _DEFAULTS[key] or not (value or _DEFAULTS[key])))
        for key, value in config.items()
    )


@torch.no_grad()
def _dora_scale(linear: nn.Linear, a: torch.Tensor, b: torch.Tensor, magnitude: torch.Tensor) -> torch.Tensor:
    """DoRA's magnitude over the norm of each row of the adapted weight W + B A (PEFT's `mag_norm_scale`)."""
    weight = linear.weight.float()
    adapted = weight + b.to(weight) @ a.to(weight)
    scale: torch.Tensor = magnitude.to(weight) / torch.linalg.norm(adapted, dim=1)
    return scale


class LoraStacks:
    """The adapters stacked on one base model; within `rows`, a forward pass applies them row by row."""

    def __init__(self, base: nn.Module) -> None:
        # Named once, before PEFT (for an adapter it runs) wraps some of these layers under new names.
        self.linears = {name: module for name, module in base.named_modules() if type(module) is nn.Linear}
        self.slots: dict[str, int] = {}  # adapter name → its slot in every stack
        self._stacks: dict[nn.Module, tuple[torch.Tensor, torch.Tensor]] = {}  # layer → A (in, r), B (r, out) per slot
        self._scales: dict[nn.Module, torch.Tensor] = {}  # layer → DoRA output scale (out) per slot; 1 where none
        self._capacity = 1  # slots in every stack, slot 0 included
        self._device = next(base.parameters()).device
        self._slot = 0  # the slot every row takes (0: no adapter), or -1: each row its own, in `_rows`
        self._rows: list[int] = []
        self._row_index = torch.zeros(0, dtype=torch.long)
        self._gathered: dict[nn.Module, Gathered] = {}  # layer → the rows' A, B and scale
        self._keep = False  # whether `_gathered` is kept between passes

    def __contains__(self, name: object) -> bool:
        return name in self.slots

    @torch.no_grad()
    def add(self, name: str, layers: dict[str, LayerAdapter]) -> None:
        """Stack adapter `name` (from `read_stackable`)."""
        free = sorted(set(range(1, self._capacity)) - set(self.slots.values()))
        if not free:
            self._grow(2 * self._capacity)
            free = [self._capacity // 2]
        slot = free[0]
        for module, (a, b, scale) in layers.items():
            layer = self.linears[module]
            rank = a.shape[0]
            if layer not in self._stacks or self._stacks[layer][0].shape[2] < rank:
                self._allocate(layer, rank)
            stack_a, stack_b = self._stacks[layer]
            stack_a[slot, :, :rank] = a.T
            stack_b[slot, :rank] = b.T
            if scale is not None:
                if layer not in self._scales:
                    self._scales[layer] = layer.weight.new_ones(self._capacity, layer.out_features)
                self._scales[layer][slot] = scale
        self.slots[name] = slot
        self._changed(slot)

    @torch.no_grad()
    def remove(self, name: str) -> None:
        slot = self.slots.pop(name)
        for a, b in self._stacks.values():
            a[slot].zero_()
            b[slot].zero_()
        for scales in self._scales.values():
            scales[slot] = 1
        self._changed(slot)

    @contextmanager
    def rows(self, adapters: list[str | None]) -> Iterator[None]:
        """Within the block, a forward pass applies stacked adapter `adapters[i]` (None: none) to row i."""
        slots = [self.slots[name] if name is not None else 0 for name in adapters]
        if len(set(slots)) == 1:
            self._slot = slots[0]
        else:
            self._slot = -1
            if slots != self._rows or not self._keep:  # the rows' gathered pairs hold while its rows do
                self._rows = slots
                self._row_index = torch.tensor(slots, dtype=torch.long, device=self._device)
                self._gathered.clear()
                self._keep = len(slots) * self._row_bytes() <= GATHERED_BYTES
        try:
            yield
        finally:
            self._slot = 0

    def _changed(self, slot: int) -> None:
        """Forget the gathered pairs if they hold `slot` (a batch of other adapters keeps them across a load)."""
        if slot in self._rows:
            self._gathered.clear()

    def _row_bytes(self) -> int:
        """What one row's A, B and scales take, gathered from every stack."""
        stacks = [tensor for pair in self._stacks.values() for tensor in pair] + list(self._scales.values())
        return sum(tensor[0].numel() * tensor.element_size() for tensor in stacks)

    def _allocate(self, layer: nn.Linear, rank: int) -> None:
        """The layer's stacks at `rank` (its adapters' lower ranks zero-padded), hooked on first use."""
        like = layer.weight
        a = like.new_zeros(self._capacity, layer.in_features, rank)
        b = like.new_zeros(self._capacity, rank, layer.out_features)
        if layer in self._stacks:
            old_a, old_b = self._stacks[layer]
            a[:, :, : old_a.shape[2]] = old_a
            b[:, : old_b.shape[1]] = old_b
        else:
            layer.register_forward_hook(self._add_deltas)
        self._stacks[layer] = (a, b)

    def _grow(self, capacity: int) -> None:
        more = capacity - self._capacity
        for layer, (a, b) in self._stacks.items():
            self._stacks[layer] = (
                torch.cat([a, a.new_zeros(more, *a.shape[1:])]),
                torch.cat([b, b.new_zeros(more, *b.shape[1:])]),
            )
        for layer, scales in self._scales.items():
            self._scales[layer] = torch.cat([scales, scales.new_ones(more, scales.shape[1])])
        self._capacity = capacity

    def _add_deltas(self, layer: nn.Linear, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> Any:
        if self._slot == 0:
            return None
        x = inputs[0]
        scales = self._scales.get(layer)
        if self._slot > 0:
            a, b = self._stacks[layer]
            delta = x @ a[self._slot] @ b[self._slot]
            scale = None if scales is None else scales[self._slot]
        else:
            a_rows, b_rows, scale_rows = self._gathered_for(layer, scales)
            flat = x.reshape(x.shape[0], -1, x.shape[-1])  # (rows, positions, in)
            delta = torch.bmm(torch.bmm(flat, a_rows), b_rows).reshape(output.shape)
            scale = None if scale_rows is None else scale_rows.view(-1, *[1] * (output.dim() - 2), output.shape[-1])
        if scale is None:
            return output + delta
        bias: torch.Tensor | None = layer.bias  # DoRA scales the linear map, not the bias
        return scale * (output + delta) if bias is None else scale * (output + delta - bias) + bias

    def _gathered_for(self, layer: nn.Module, scales: torch.Tensor | None) -> Gathered:
        gathered = self._gathered.get(layer)
        if gathered is None:
            a, b = self._stacks[layer]
            index = self._row_index
            gathered = Gathered(a[index], b[index], None if scales is None else scales[index])
            if self._keep:
                self._gathered[layer] = gathered
        return gathered
