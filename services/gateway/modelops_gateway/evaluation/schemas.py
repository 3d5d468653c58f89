"""The bodies of the evaluation jobs API: what a client sends and what it reads back."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from modelops_contracts import JobStatus
from pydantic import BaseModel, Field

from ..jobs.schemas import Failure
from .submission import EvaluationJobRequest

__all__ = ["EvaluationJobRequest", "EvaluationJobView"]


class EvaluationProgress(BaseModel):
    done: int = Field(description="Items answered")
    total: int | None = Field(description="Items to answer, once a worker read the suite")


class EvaluationJobView(BaseModel):
    """An evaluation job as the gateway knows it from the evaluator's events."""

    id: str
    kind: str = "evaluation"
    status: JobStatus
    submitted_by: str
    model: str = Field(description="The model artifact evaluated")
    adapter: str | None = Field(description="The adapter artifact evaluated with it")
    deployment: str | None = Field(description="The deployment it was evaluated through")
    suite: str
    suite_version: int
    spec: dict[str, Any] = Field(description="The StartEvaluation command sent to the workers")
    worker: str | None
    progress: EvaluationProgress
    report_id: str | None = Field(description="The signed eval_report artifact, once completed")
    metrics: dict[str, float] | None = Field(description="The report's aggregates, once completed")
    failure: Failure | None
    cancel_requested_at: datetime | None
    cancel_requested_by: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime

    @classmethod
    def of(cls, job: dict[str, Any]) -> EvaluationJobView:
        failure = Failure(reason=job["failure_reason"], error_type=job["error_type"]) if job["failure_reason"] else None
        return cls(
            id=job["id"],
            status=job["status"],
            submitted_by=job["submitted_by"],
            model=job["model_id"],
            adapter=job["adapter_id"],
            deployment=job["deployment"],
            suite=job["suite"],
            suite_version=job["suite_version"],
            spec=job["spec"],
            worker=job["worker"],
            progress=EvaluationProgress(done=job["done"], total=job["total"]),
            report_id=job["report_id"],
            metrics=job["metrics"],
            failure=failure,
            cancel_requested_at=job["cancel_requested_at"],
            cancel_requested_by=job["cancel_requested_by"],
            created_at=job["created_at"],
            started_at=job["started_at"],
            finished_at=job["finished_at"],
            updated_at=job["updated_at"],
        )
