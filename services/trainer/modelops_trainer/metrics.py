"""Prometheus metrics of training runs, beside the job metrics every worker has (modelops_shared.jobs.metrics)."""

from __future__ import annotations

from prometheus_client import Histogram

TOKENS_PER_SECOND = Histogram(
    "modelops_training_tokens_per_second",
    "Training throughput as each progress report measured it",
    ("method",),
    buckets=(10, 30, 100, 300, 1000, 3000, 10_000, 30_000, 100_000, 300_000),
)
