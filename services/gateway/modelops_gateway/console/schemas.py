"""What the console's routes take and answer beyond the logic's own records (store.Hop, kafka_view's states)."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, Field

from .serving_metrics import ModelFigures
from .store import Hop


@dataclass(frozen=True)
class Flow:
    id: str
    trace_ids: list[str]
    trace_url: str | None  # Jaeger's page of a trace, with `{trace_id}` to fill in; null without Jaeger
    hops: list[Hop]


@dataclass(frozen=True)
class DeploymentServing:
    deployment: str
    models: list[ModelFigures]


class ReplayRequest(BaseModel):
    topic: str = Field(pattern=r"^[a-z0-9._-]{1,100}$", description="The original topic, e.g. training.commands.v1")
    consumer: str | None = Field(None, max_length=200, description="Only what this consumer group dead-lettered")
    dry_run: bool = Field(False, description="List what would be replayed; send nothing")


@dataclass(frozen=True)
class Replayed:
    offset: int
    topic: str
    key: str | None
    error: str
