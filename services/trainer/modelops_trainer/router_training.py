"""One `snn_router` run, on the calling thread: embed every row's prompt with the job's embedding model, fit the
spiking router (modelops_shared.snn_router) on the train split, measure it on the held-out split, save it.

Epochs are short (seconds on a CPU for thousands of rows), so there are no checkpoints: a run that is stopped or
redelivered starts again."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from modelops_contracts import Hyperparameters, RouterSpec
from modelops_shared import snn_router
from sentence_transformers import SentenceTransformer

from . import data
from .callbacks import Hooks, Progress
from .capabilities import detect
from .domain import JobSpecError
from .engine import Result

ROUTER_DIR = "router"
EMBED_BATCH = 64


@dataclass(frozen=True)
class RouterPlan:
    embedding_model: Path
    embedding_model_id: str
    rows: list[dict[str, Any]]
    spec: RouterSpec
    hyperparameters: Hyperparameters
    eval_split: float
    output_dir: Path


def run(plan: RouterPlan, hooks: Hooks) -> Result:
    """Train, evaluate and save the router under `plan.output_dir/router`; JobSpecError for an impossible spec."""
    capabilities = detect()
    labels = tuple(sorted({str(row["target"]) for row in plan.rows}))
    spec, budget = plan.spec, plan.hyperparameters
    try:
        config = snn_router.RouterConfig(
            labels=labels,
            input_dim=0,  # set by fit from the embeddings
            hidden=spec.hidden,
            steps=spec.steps,
            beta=spec.beta,
            encoding=spec.encoding,
            threshold=spec.threshold,
            min_margin=spec.min_margin,
            fallback=spec.fallback,
            embedding_model=plan.embedding_model_id,
        )
    except ValueError as error:
        raise JobSpecError(f"{error} (the dataset's targets: {list(labels)})") from None
    train_rows, held_out = data.split_rows(plan.rows, plan.eval_split, budget.seed)
    encoder = SentenceTransformer(str(plan.embedding_model), device=capabilities.device, local_files_only=True)
    epochs = snn_router.epochs_for(len(train_rows), budget.batch_size, epochs=budget.epochs, max_steps=budget.max_steps)
    per_epoch = math.ceil(len(train_rows) / budget.batch_size)
    began = time.monotonic()
    hooks.started(epochs * per_epoch, 0)

    def on_epoch(epoch: int, loss: float) -> bool:
        elapsed = time.monotonic() - began
        eta = elapsed / epoch * (epochs - epoch)
        hooks.progressed(Progress(epoch * per_epoch, epochs * per_epoch, loss, budget.learning_rate, 0.0, eta))
        return hooks.stop_reason() is None

    router = snn_router.fit(
        _embed(encoder, train_rows),
        [row["target"] for row in train_rows],
        config,
        epochs=epochs,
        learning_rate=budget.learning_rate,
        batch_size=budget.batch_size,
        seed=budget.seed,
        activity_weight=spec.activity_weight,
        on_epoch=on_epoch,
    )
    if router is None:
        return Result(0, {}, None, hooks.stop_reason() or "cancelled", capabilities)
    metrics: dict[str, float] = {"train_rows": float(len(train_rows))}
    if held_out:
        measured = snn_router.evaluate(router, _embed(encoder, held_out), [row["target"] for row in held_out])
        metrics |= {f"eval_{name}": value for name, value in measured.items()}
    directory = plan.output_dir / ROUTER_DIR
    snn_router.save(router, directory)
    return Result(epochs * per_epoch, metrics, directory, None, capabilities)


def _embed(encoder: SentenceTransformer, rows: list[dict[str, Any]]) -> np.ndarray:
    vectors = encoder.encode(
        [str(row["prompt"]) for row in rows], batch_size=EMBED_BATCH, normalize_embeddings=True, convert_to_numpy=True
    )
    return np.asarray(vectors, dtype=np.float32)
