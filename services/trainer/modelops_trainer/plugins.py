"""Plugins from the `modelops.plugins` entry-point group, named in a job's spec.

What each slot expects of the object its entry point loads:

- loss:      `(outputs, labels, num_items_in_batch) -> Tensor` (transformers' `compute_loss_func`; sft only)
- optimizer: `(parameters: list[Parameter], learning_rate: float) -> torch.optim.Optimizer`
- metric:    `(model, tokenizer, held_out_rows: list[dict]) -> dict[str, float]`, merged into the job's metrics
- callback:  a `transformers.TrainerCallback` subclass (or a factory of one); a `metrics` mapping on it, if any,
             is merged into the job's metrics when training ends
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from modelops_contracts import PluginSpec
from transformers import TrainerCallback

from .domain import JobSpecError

GROUP = "modelops.plugins"


@dataclass(frozen=True)
class Plugins:
    loss: Callable[..., Any] | None = None
    optimizer: Callable[..., Any] | None = None
    metrics: dict[str, Callable[..., dict[str, float]]] = field(default_factory=dict)
    callbacks: list[TrainerCallback] = field(default_factory=list)

    def callback_metrics(self) -> dict[str, float]:
        """What the callbacks report through a `metrics` attribute, under their own names."""
        found: dict[str, float] = {}
        for callback in self.callbacks:
            found.update({k: float(v) for k, v in getattr(callback, "metrics", {}).items()})
        return found


def load_plugins(spec: PluginSpec | None, method: str) -> Plugins:
    """The named plugins, loaded and checked; JobSpecError for an unknown name or an object of the wrong kind."""
    if spec is None:
        return Plugins()
    if spec.loss and method != "sft":
        raise JobSpecError(f"a loss plugin replaces the sft loss; method {method} has its own")
    available = {ep.name: ep for ep in entry_points(group=GROUP)}

    def load(name: str) -> Any:
        if name not in available:
            raise JobSpecError(f"no plugin {name!r} in entry-point group {GROUP} (installed: {sorted(available)})")
        try:
            return available[name].load()
        except Exception as error:
            raise JobSpecError(f"plugin {name!r} failed to load: {error!r}") from None

    def callable_plugin(name: str) -> Callable[..., Any]:
        plugin = load(name)
        if not callable(plugin):
            raise JobSpecError(f"plugin {name!r} is not callable")
        return plugin  # type: ignore[no-any-return]

    def callback(name: str) -> TrainerCallback:
        plugin = load(name)
        instance = plugin() if isinstance(plugin, type) or not isinstance(plugin, TrainerCallback) else plugin
        if not isinstance(instance, TrainerCallback):
            raise JobSpecError(f"plugin {name!r} does not make a transformers TrainerCallback")
        return instance

    return Plugins(
        loss=callable_plugin(spec.loss) if spec.loss else None,
        optimizer=callable_plugin(spec.optimizer) if spec.optimizer else None,
        metrics={name: callable_plugin(name) for name in spec.metrics},
        callbacks=[callback(name) for name in spec.callbacks],
    )
