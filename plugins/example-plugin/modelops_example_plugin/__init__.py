"""Example plugins: for the trainer (entry-point group `modelops.plugins`) a loss, an optimizer, a metric and a
callback; for the evaluator (group `modelops.eval_metrics`) a per-answer metric."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

IGNORE = -100
LABEL_SMOOTHING = 0.1
INVOCATIONS: Counter[str] = Counter()
"""How often each plugin ran in this process."""


def label_smoothed_loss(outputs: Any, labels: torch.Tensor, num_items_in_batch: Any = None) -> torch.Tensor:
    """Next-token cross entropy with label smoothing, summed and divided by the batch's label count (as the
    Trainer's own loss is, so gradient accumulation weighs every token alike)."""
    INVOCATIONS["loss"] += 1
    logits = outputs.logits[:, :-1, :].float()
    targets = labels[:, 1:].to(logits.device)
    loss = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]),
        targets.reshape(-1),
        ignore_index=IGNORE,
        label_smoothing=LABEL_SMOOTHING,
        reduction="sum",
    )
    count = num_items_in_batch if num_items_in_batch is not None else (targets != IGNORE).sum()
    return loss / count


def sgd_with_momentum(parameters: Iterable[torch.nn.Parameter], learning_rate: float) -> torch.optim.Optimizer:
    INVOCATIONS["optimizer"] += 1
    return torch.optim.SGD(list(parameters), lr=learning_rate, momentum=0.9)


def token_accuracy(model: Any, tokenizer: Any, rows: list[dict[str, Any]]) -> dict[str, float]:
    """Share of completion tokens of held-out sft rows that greedy next-token prediction gets right."""
    INVOCATIONS["metric"] += 1
    right = total = 0
    device = next(model.parameters()).device
    with torch.no_grad():
        for row in rows:
            if "completion" not in row:
                continue
            prompt = tokenizer(row["prompt"], add_special_tokens=False)["input_ids"]
            completion = tokenizer(row["completion"], add_special_tokens=False)["input_ids"]
            ids = torch.tensor([prompt + completion], device=device)
            predicted = model(input_ids=ids).logits[0, len(prompt) - 1 : -1].argmax(-1)
            right += int((predicted == ids[0, len(prompt) :]).sum())
            total += len(completion)
    return {"token_accuracy": right / total} if total else {}


class GradNormTracker(TrainerCallback):
    """Keeps the largest gradient norm the Trainer logged; the trainer reports `metrics` with the job's results."""

    def __init__(self) -> None:
        self.metrics: dict[str, float] = {}

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        INVOCATIONS["callback"] += 1
        if logs and "grad_norm" in logs:
            self.metrics["max_grad_norm"] = max(self.metrics.get("max_grad_norm", 0.0), float(logs["grad_norm"]))


def answer_within_words(params: Mapping[str, Any]) -> Callable[[str, str], float]:
    """Evaluator metric: 1 when the answer has at most `max_words` words (default: as many as the reference), which
    tells a model that answers to the point from one that rambles."""
    limit = params.get("max_words")
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise ValueError("`max_words` is a positive integer")

    def score(answer: str, reference: str) -> float:
        INVOCATIONS["eval_metric"] += 1
        return float(len(answer.split()) <= (limit or len(reference.split())))

    return score
