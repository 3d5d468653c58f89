"""Prometheus metrics of the registry: how far its projections trail the events they project."""

from __future__ import annotations

from prometheus_client import Histogram

PROJECTION_LAG_SECONDS = Histogram(
    "modelops_registry_projection_lag_seconds",
    "From an event's publication (its CloudEvents time) to the registry projecting it",
    ("type",),
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0),
)
