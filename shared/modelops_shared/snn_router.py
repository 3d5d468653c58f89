"""The spiking router: which of a few targets answers a prompt, decided by leaky integrate-and-fire neurons (snnTorch)
over the prompt's sentence embedding. The trainer fits it, inference serves it, the benchmark measures it: one
definition for the three, so what is measured is what is served.

A unit-length embedding is split into its positive and negative parts (a spike cannot be negative), scaled so that
the strongest components reach intensity 1, and latency-coded: each input neuron fires at most once, earlier the
stronger it is, and not at all below `threshold` (or rate-coded: a spike each step with the intensity's probability).
Two layers of leaky neurons follow; the target whose output neuron fires most wins, and the margin is its spike count
less the runner-up's. Synaptic operations count what a spike-driven chip computes: one accumulate per spike per
outgoing synapse."""

from __future__ import annotations

import itertools
import json
import math
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import snntorch
import torch
from safetensors.torch import load_file, save_file
from snntorch import functional, spikegen, surrogate

WEIGHTS = "router.safetensors"
CONFIG = "router.json"
SCALE_QUANTILE = 0.99  # the embedding magnitude that maps to intensity 1: the strongest 1% saturate


@dataclass(frozen=True)
class RouterConfig:
    """The network's shape and coding, its targets, and when it defers to the fallback target."""

    labels: tuple[str, ...]
    input_dim: int
    hidden: int = 64
    steps: int = 16
    beta: float = 0.9
    encoding: Literal["latency", "rate"] = "latency"
    threshold: float = 0.1
    scale: float = 1.0
    min_margin: int = 1
    fallback: str | None = None
    embedding_model: str = ""

    def __post_init__(self) -> None:
        if len(self.labels) < 2 or len(set(self.labels)) != len(self.labels):
            raise ValueError("a router needs at least two distinct targets")
        if self.fallback is not None and self.fallback not in self.labels:
            raise ValueError(f"the fallback {self.fallback!r} is not one of the targets {list(self.labels)}")


@dataclass(frozen=True)
class Decision:
    label: str
    winner: str
    counts: dict[str, int]
    margin: int
    fallback: bool
    synaptic_ops: int
    spikes: int


class SpikingRouter(torch.nn.Module):
    def __init__(self, config: RouterConfig) -> None:
        super().__init__()
        self.config = config
        grad = surrogate.fast_sigmoid(slope=25)
        self.fc1 = torch.nn.Linear(2 * config.input_dim, config.hidden)
        self.lif1 = snntorch.Leaky(beta=config.beta, spike_grad=grad)
        self.fc2 = torch.nn.Linear(config.hidden, len(config.labels))
        self.lif2 = snntorch.Leaky(beta=config.beta, spike_grad=grad)

    @property
    def neurons(self) -> int:
        """Input, hidden and output neurons: the denominator of the spike rate (per step)."""
        return 2 * self.config.input_dim + self.config.hidden + len(self.config.labels)

    def encode(self, embeddings: torch.Tensor) -> torch.Tensor:
        """[batch, dim] embeddings → [steps, batch, 2·dim] input spikes."""
        intensity = torch.cat([embeddings.clamp(min=0), (-embeddings).clamp(min=0)], dim=-1) / self.config.scale
        intensity = intensity.clamp(max=1.0)
        spikes: torch.Tensor
        if self.config.encoding == "rate":
            spikes = spikegen.rate(intensity, num_steps=self.config.steps)
        else:
            spikes = spikegen.latency(
                intensity,
                num_steps=self.config.steps,
                threshold=self.config.threshold,
                normalize=True,
                linear=True,
                clip=True,
            )
        return spikes

    def forward(self, spikes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Input spikes → (output spikes [steps, batch, targets], hidden spikes [steps, batch, hidden])."""
        # Each layer's input currents for every step in one product: the same sums as step by step, fewer calls.
        hidden = self._fire(self.lif1, self.fc1(spikes))
        return self._fire(self.lif2, self.fc2(hidden)), hidden

    @staticmethod
    def _fire(neurons: snntorch.Leaky, currents: torch.Tensor) -> torch.Tensor:
        membrane = neurons.init_leaky()
        spikes = []
        for current in currents:
            spike, membrane = neurons(current, membrane)
            spikes.append(spike)
        return torch.stack(spikes)

    @torch.inference_mode()
    def decide(self, embedding: np.ndarray) -> Decision:
        """The target for one embedding, or the fallback when the winner's margin is below `min_margin`."""
        inputs = self.encode(torch.as_tensor(embedding, dtype=torch.float32).reshape(1, -1))
        out, hidden = self(inputs)
        counts = out.sum(dim=0)[0]
        top = torch.topk(counts, 2)
        margin = int(top.values[0] - top.values[1])
        label = self.config.labels[int(top.indices[0])]
        fell_back = margin < self.config.min_margin and self.config.fallback is not None
        return Decision(
            label=self.config.fallback if fell_back and self.config.fallback else label,
            winner=label,
            counts={name: int(count) for name, count in zip(self.config.labels, counts.tolist(), strict=True)},
            margin=margin,
            fallback=fell_back,
            synaptic_ops=self.synaptic_ops(inputs, hidden),
            spikes=int(inputs.sum() + hidden.sum() + out.sum()),
        )

    def synaptic_ops(self, inputs: torch.Tensor, hidden: torch.Tensor) -> int:
        """Accumulates a spike-driven chip performs: every spike reaches each neuron of the next layer once."""
        return int(inputs.sum()) * self.config.hidden + int(hidden.sum()) * len(self.config.labels)


def epochs_for(rows: int, batch_size: int, *, epochs: float | None, max_steps: int | None) -> int:
    """Whole epochs for a budget given in epochs, or in optimizer steps (rounded up to whole epochs)."""
    if epochs is not None:
        return max(1, math.ceil(epochs))
    return max(1, math.ceil((max_steps or 1) / max(1, math.ceil(rows / batch_size))))


def multiply_accumulates(layers: list[int]) -> int:
    """A dense network's multiply-accumulates per input, for layer widths [input, hidden…, output]."""
    return sum(a * b for a, b in itertools.pairwise(layers))


def fit(
    embeddings: np.ndarray,
    targets: list[str],
    config: RouterConfig,
    *,
    epochs: int = 40,
    learning_rate: float = 2e-3,
    batch_size: int = 64,
    seed: int = 42,
    activity_weight: float = 0.1,
    on_epoch: Callable[[int, float], bool] | None = None,
) -> SpikingRouter | None:
    """Train on `embeddings` (unit-length rows) labelled `targets`: cross-entropy of the output spike counts (the
    decision itself), plus a penalty on the hidden layer's spike rate (fewer spikes, fewer operations). The input
    scale is fitted here, from the training embeddings. `on_epoch(epoch, mean loss)` is told after each epoch and
    stops training (None is returned) by answering False."""
    torch.manual_seed(seed)
    random.seed(seed)
    scale = float(np.quantile(np.abs(embeddings), SCALE_QUANTILE)) or 1.0
    config = RouterConfig(**{**asdict(config), "scale": scale, "input_dim": int(embeddings.shape[1])})
    router = SpikingRouter(config)
    index = {label: i for i, label in enumerate(config.labels)}
    x = torch.as_tensor(embeddings, dtype=torch.float32)
    y = torch.as_tensor([index[target] for target in targets])
    loss_of = functional.ce_count_loss()
    optimizer = torch.optim.Adam(router.parameters(), lr=learning_rate)
    router.train()
    for epoch in range(1, epochs + 1):
        order = torch.randperm(len(x))
        losses = []
        for start in range(0, len(x), batch_size):
            batch = order[start : start + batch_size]
            out, hidden = router(router.encode(x[batch]))
            loss = loss_of(out, y[batch]) + activity_weight * hidden.mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
        if on_epoch is not None and not on_epoch(epoch, sum(losses) / len(losses)):
            return None
    router.eval()
    return router


@torch.inference_mode()
def evaluate(router: SpikingRouter, embeddings: np.ndarray, targets: list[str]) -> dict[str, float]:
    """Accuracy (of the network's own winner, before any fallback), mean margin, spike rate, and synaptic operations
    per prompt on labelled embeddings."""
    decisions = [router.decide(row) for row in embeddings]
    n = max(len(decisions), 1)
    return {
        "accuracy": sum(d.winner == t for d, t in zip(decisions, targets, strict=True)) / n,
        "mean_margin": sum(d.margin for d in decisions) / n,
        "fallback_rate": sum(d.fallback for d in decisions) / n,
        "spike_rate": sum(d.spikes for d in decisions) / (n * router.neurons * router.config.steps),
        "synaptic_ops": sum(d.synaptic_ops for d in decisions) / n,
    }


def save(router: SpikingRouter, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    save_file({name: tensor.contiguous() for name, tensor in router.state_dict().items()}, directory / WEIGHTS)
    (directory / CONFIG).write_text(json.dumps(asdict(router.config), indent=2, sort_keys=True) + "\n")


def load(directory: Path) -> SpikingRouter:
    """The router saved in `directory`; ValueError when its config or weights do not describe one network."""
    raw: dict[str, Any] = json.loads((directory / CONFIG).read_text())
    try:
        config = RouterConfig(**{**raw, "labels": tuple(raw["labels"])})
        router = SpikingRouter(config)
        router.load_state_dict(load_file(directory / WEIGHTS), strict=True)
    except (KeyError, TypeError, RuntimeError) as error:
        raise ValueError(f"not a router: {error}") from None
    router.eval()
    return router
