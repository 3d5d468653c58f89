"""Evaluator settings: the shared ones plus the consumer group, scratch space, batching, and the inference service that
deployment evaluations go through."""

from __future__ import annotations

from pathlib import Path

from modelops_shared.settings import Settings
from pydantic import Field


class EvaluatorSettings(Settings):
    service_name: str = "evaluator"
    evaluator_schema: str = Field("evaluator", description="Postgres schema: job outcomes and the outbox")
    evaluator_group: str = Field("evaluator", description="Consumer group every evaluator replica joins")
    evaluator_worker_id: str | None = Field(None, description="Name in EvaluationStarted; default <host>-<pid>")
    evaluator_work_dir: Path | None = Field(None, description="Scratch space; default <state_dir>/evaluator")
    evaluator_max_job_attempts: int = Field(
        3, ge=1, description="Starts of one job (its worker died each time) before it is failed instead of retried"
    )
    evaluator_batch_size: int = Field(8, ge=1, le=256, description="Items per batch when the evaluator runs the model")
    evaluator_concurrency: int = Field(
        8, ge=1, le=256, description="Requests in flight to a deployment (the inference service batches them)"
    )
    evaluator_request_timeout_s: float = Field(300.0, gt=0, description="One request to a deployment")
    inference_url: str = Field("http://127.0.0.1:8004", description="The inference service's HTTP API")

    @property
    def work_dir(self) -> Path:
        return self.evaluator_work_dir or self.state_dir / "evaluator"
