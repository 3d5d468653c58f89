"""A deployment's serving figures for its console page, read from the inference service's Prometheus exposition:
requests by outcome, tokens, and time to first token and inter-token latency quantiles, per model it serves (the
deployment's own name, an adapter alias, an `ft:` name). Quantiles are estimated from the histogram's buckets
the way Prometheus' histogram_quantile does. One replica's counters: Prometheus sums every replica."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

REQUESTS = "modelops_inference_requests"
PROMPT_TOKENS = "modelops_inference_prompt_tokens"
COMPLETION_TOKENS = "modelops_inference_completion_tokens"
HISTOGRAMS = {
    "modelops_inference_time_to_first_token_seconds": "time_to_first_token",
    "modelops_inference_inter_token_latency_seconds": "inter_token_latency",
}


@dataclass
class Latency:
    count: int = 0
    mean_s: float | None = None
    p50_s: float | None = None
    p95_s: float | None = None


@dataclass
class ModelFigures:
    model: str
    requests: dict[str, int] = field(default_factory=dict)  # outcome → count
    prompt_tokens: int = 0
    completion_tokens: int = 0
    time_to_first_token: Latency = field(default_factory=Latency)
    inter_token_latency: Latency = field(default_factory=Latency)


def deployment_figures(exposition: str, deployment: str) -> list[ModelFigures]:
    """The figures of every model `deployment` served, by model name."""
    figures: dict[str, ModelFigures] = {}
    buckets: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    sums: dict[tuple[str, str], float] = {}

    def of(model: str) -> ModelFigures:
        return figures.setdefault(model, ModelFigures(model))

    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.labels.get("deployment") != deployment:
                continue
            model = sample.labels.get("model", deployment)
            if family.name == REQUESTS and sample.name.endswith("_total"):
                of(model).requests[sample.labels.get("outcome", "unknown")] = int(sample.value)
            elif family.name == PROMPT_TOKENS and sample.name.endswith("_total"):
                of(model).prompt_tokens = int(sample.value)
            elif family.name == COMPLETION_TOKENS and sample.name.endswith("_total"):
                of(model).completion_tokens = int(sample.value)
            elif family.name in HISTOGRAMS:
                key = (HISTOGRAMS[family.name], model)
                if sample.name.endswith("_bucket"):
                    buckets[key].append((float(sample.labels["le"]), sample.value))
                elif sample.name.endswith("_sum"):
                    sums[key] = sample.value
    for (name, model), counts in buckets.items():
        counts.sort()
        total = int(counts[-1][1]) if counts else 0
        mean = sums.get((name, model), 0.0) / total if total else None
        latency = Latency(total, mean, quantile(0.5, counts), quantile(0.95, counts))
        setattr(of(model), name, latency)
    return sorted(figures.values(), key=lambda f: f.model)


def quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """The q-quantile of a cumulative histogram [(upper bound, count)], interpolated linearly within its bucket; the
    highest finite bound when it falls in +Inf; None when the histogram is empty."""
    if not buckets or buckets[-1][1] == 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower
            return lower + (bound - lower) * ((rank - below) / (count - below) if count > below else 1.0)
        lower, below = bound, count
    return lower
