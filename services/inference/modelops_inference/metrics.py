"""Prometheus metrics of serving, labelled by deployment and model (the name a request addressed: the deployment,
an adapter alias or an `ft:` name), plus the scheduler's queue depth and batch sizes per base model, idle unloads and
the cold starts they cost, and routers' decisions and how long they take."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_LABELS = ("deployment", "model")
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

REQUESTS = Counter("modelops_inference_requests_total", "Completion requests by outcome", (*_LABELS, "outcome"))
TOKENS_IN = Counter("modelops_inference_prompt_tokens_total", "Prompt tokens", _LABELS)
TOKENS_OUT = Counter("modelops_inference_completion_tokens_total", "Generated tokens", _LABELS)
TIME_TO_FIRST_TOKEN = Histogram(
    "modelops_inference_time_to_first_token_seconds",
    "From enqueue to the first token",
    _LABELS,
    buckets=_LATENCY_BUCKETS,
)
INTER_TOKEN_LATENCY = Histogram(
    "modelops_inference_inter_token_latency_seconds",
    "Between consecutive tokens of a sequence",
    _LABELS,
    buckets=_LATENCY_BUCKETS,
)
QUEUE_DEPTH = Gauge("modelops_inference_queue_depth", "Requests waiting to join a batch", ("base_model",))
BATCH_SIZE = Histogram(
    "modelops_inference_batch_size",
    "Sequences per forward pass",
    ("base_model",),
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
)
COLD_START_SECONDS = Histogram(
    "modelops_inference_cold_start_seconds",
    "Loading a base model again for a request after it was unloaded for idleness",
    ("base_model",),
    buckets=(0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0),
)
IDLE_UNLOADS = Counter("modelops_inference_idle_unloads_total", "Base models unloaded for idleness", ("base_model",))
LOADED_ADAPTERS = Gauge("modelops_inference_loaded_adapters", "Adapters loaded on a base model", ("base_model",))
ROUTER_DECISIONS = Counter(
    "modelops_inference_router_decisions_total",
    "Router decisions by target and fallback",
    ("router", "target", "fallback"),
)
ROUTER_SECONDS = Histogram(
    "modelops_inference_router_decision_seconds",
    "Embedding a prompt and running the router's network",
    ("router",),
    buckets=(0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1),
)
