"""Training job routes: submit (developer, idempotent; the base model and dataset are checked with the registry
before anything is queued), list and read (viewer), cancel (developer).

Produces: training.commands.v1 (StartTraining, CancelTraining), through the outbox."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import asyncpg
from fastapi import APIRouter, Query, Response
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse
from modelops_shared.problems import Problem
from pydantic import BaseModel, Field

from .auth import Developer, Viewer
from .context import GatewayDep
from .idempotency import Idempotent
from .jobs import Job, TrainingJobRequest, cancel, get_job, list_jobs, submit
from .openapi import problems

JSON_BODY_LIMIT = 64 * 1024

JobId = Annotated[str, PathParam(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]
JobStatus = Literal["queued", "running", "completed", "failed", "cancelled"]

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], responses=problems(401, 403, 429))


class JobAccepted(BaseModel):
    id: str
    status: Literal["queued"]


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
    reason: str = Field("", max_length=2000)


@router.post(
    "/training",
    status_code=202,
    response_model=JobAccepted,
    max_body_size=JSON_BODY_LIMIT,
    responses=problems(404, 413, 422, 502, 503),
)
async def submit_training_job(
    body: TrainingJobRequest, caller: Developer, gateway: GatewayDep, idempotency: Idempotent
) -> Response:
    """Fine-tune an adapter (developer): the job is queued for the trainers; follow it with `GET /v1/jobs/{id}` or
    its event stream. An unknown base model or dataset (version) is a 404 and queues nothing."""

    async def create(conn: asyncpg.Connection) -> Response:
        job = await submit(
            conn,
            gateway.lookups,
            gateway.runtime.bus,
            body,
            submitted_by=caller.name,
            wait_s=gateway.settings.gateway_registry_wait_s,
        )
        accepted = JobAccepted(id=job.id, status="queued")
        return JSONResponse(accepted.model_dump(), 202, headers={"Location": f"/v1/jobs/{job.id}"})

    return (await idempotency.run(body.model_dump(mode="json"), create)).response


@router.get("", response_model=JobPage)
async def list_training_jobs(
    _: Viewer,
    gateway: GatewayDep,
    status: JobStatus | None = None,
    kind: Literal["training"] | None = None,
    cursor: Annotated[str | None, Query(max_length=128, description="The previous page's next_cursor")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> JobPage:
    """Jobs, newest first, a page at a time (`next_cursor`)."""
    jobs = await list_jobs(gateway.runtime.pool, status=status, kind=kind, before=cursor, limit=limit + 1)
    page = jobs[:limit]
    return JobPage(data=[JobView.of(job) for job in page], next_cursor=page[-1].id if len(jobs) > limit else None)


@router.get("/{job_id}", response_model=JobView, responses=problems(404, 422))
async def get_training_job(_: Viewer, gateway: GatewayDep, job_id: JobId) -> JobView:
    """One job: status, progress, latest loss, metrics, the adapter it produced, why it failed."""
    job = await get_job(gateway.runtime.pool, job_id)
    if job is None:
        raise Problem(404, "job-not-found", f"no job {job_id}")
    return JobView.of(job)


@router.post(
    "/{job_id}/cancel",
    status_code=202,
    response_model=JobView,
    max_body_size=JSON_BODY_LIMIT,
    responses=problems(404, 409, 413, 422),
)
async def cancel_training_job(
    caller: Developer, gateway: GatewayDep, job_id: JobId, body: CancelRequest | None = None
) -> JobView:
    """Ask the job's worker to stop (developer); the job is `cancelled` once the worker confirms. A finished job
    is a 409; asking again sends nothing more."""
    async with gateway.runtime.pool.acquire() as conn, conn.transaction():
        job = await cancel(
            conn, gateway.runtime.bus, job_id, requested_by=caller.name, reason=(body or CancelRequest()).reason
        )
    return JobView.of(job)
