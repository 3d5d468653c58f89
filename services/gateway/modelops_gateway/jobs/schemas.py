"""The bodies of the jobs API: what a client sends and what it reads back, built from the gateway's record of a job
(`JobView.of`) and its events (`wire`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from modelops_contracts import JobStatus
from modelops_contracts.artifacts import FREE_TEXT_PATTERN
from pydantic import BaseModel, Field

from .store import Job, JobEvent


class JobAccepted(BaseModel):
    id: str
    status: Literal[JobStatus.QUEUED]


class Progress(BaseModel):
    step: int | None
    total_steps: int | None


class Failure(BaseModel):
    reason: str
    error_type: str | None


class JobView(BaseModel):
    """A job as the gateway knows it from its worker's events."""

    id: str
    kind: str
    status: JobStatus
    submitted_by: str
    base_model: str = Field(description="As submitted: an artifact id or a name")
    base_model_id: str = Field(description="The base model artifact the job trains on")
    dataset: str
    dataset_version: int
    dataset_id: str = Field(description="The dataset version's artifact id")
    spec: dict[str, Any] = Field(description="The StartTraining command sent to the workers")
    worker: str | None
    progress: Progress
    loss: float | None = Field(description="The latest training loss reported")
    learning_rate: float | None
    tokens_per_second: float | None
    estimated_finish: datetime | None
    metrics: dict[str, float] = Field(description="Evaluation metrics, once completed")
    adapter_artifact_id: str | None = Field(description="The adapter the job produced, once completed")
    fine_tuned_model: str | None = Field(description="ft:<base>:<suffix>:<job id>, once completed")
    failure: Failure | None
    cancel_requested_at: datetime | None
    cancel_requested_by: str | None
    last_event_id: int = Field(description="The seq of the job's latest event (the SSE id)")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime

    @classmethod
    def of(cls, job: Job) -> JobView:
        return cls(
            id=job.id,
            kind=job.kind,
            status=job.status,
            submitted_by=job.submitted_by,
            base_model=job.base_model,
            base_model_id=job.base_model_id,
            dataset=job.dataset,
            dataset_version=job.dataset_version,
            dataset_id=job.dataset_id,
            spec=job.spec,
            worker=job.worker,
            progress=Progress(step=job.step, total_steps=job.total_steps),
            loss=job.loss,
            learning_rate=job.learning_rate,
            tokens_per_second=job.tokens_per_second,
            estimated_finish=job.estimated_finish,
            metrics=job.metrics,
            adapter_artifact_id=job.adapter_artifact_id,
            fine_tuned_model=job.fine_tuned_model,
            failure=Failure(reason=job.failure_reason, error_type=job.error_type) if job.failure_reason else None,
            cancel_requested_at=job.cancel_requested_at,
            cancel_requested_by=job.cancel_requested_by,
            last_event_id=job.last_seq,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            updated_at=job.updated_at,
        )


class JobPage(BaseModel):
    data: list[JobView]
    next_cursor: str | None


class CancelRequest(BaseModel):
    reason: str = Field("", max_length=2000, pattern=FREE_TEXT_PATTERN)


def wire(event: JobEvent) -> dict[str, Any]:
    """An event as a stream (SSE or WebSocket) sends it."""
    return {"id": event.seq, "job_id": event.job_id, "type": event.type, "at": event.at.isoformat(), "data": event.data}
