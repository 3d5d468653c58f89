"""Training job routes: submit (developer, idempotent; the base model and dataset are checked with the registry
before anything is queued), list and read (viewer), cancel (developer).

Produces: training.commands.v1 (StartTraining, CancelTraining), through the outbox."""

from __future__ import annotations

from typing import Annotated, Literal

import asyncpg
from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse
from modelops_contracts import JobStatus

from ...deps import GatewayDep
from ...web.auth import Developer, Viewer
from ...web.idempotency import Idempotent
from ...web.openapi import problems
from ..domain import JobNotFound
from ..schemas import CancelRequest, JobAccepted, JobPage, JobView
from ..store import get_job, list_jobs
from ..submission import Submission, TrainingJobRequest, cancel, check_submission, record_submission
from . import JobId

JSON_BODY_LIMIT = 64 * 1024

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], responses=problems(401, 403, 429))


@router.post(
    "/training",
    status_code=202,
    response_model=JobAccepted,
    max_body_size=JSON_BODY_LIMIT,
    responses=problems(402, 404, 413, 422, 502, 503),
)
async def submit_training_job(
    body: TrainingJobRequest, caller: Developer, gateway: GatewayDep, idempotency: Idempotent
) -> Response:
    """Fine-tune an adapter (developer): the job is queued for the trainers; follow it with `GET /v1/jobs/{id}` or
    its event stream. An unknown base model or dataset (version) is a 404 and queues nothing."""

    async def check(_: str) -> Submission:
        return await check_submission(
            gateway.runtime.pool,
            gateway.lookups,
            body,
            token_cost=gateway.token_cost,
            submitted_by=caller.name,
            settings=gateway.settings,
        )

    async def record(conn: asyncpg.Connection, submission: Submission) -> Response:
        currency = gateway.settings.gateway_prices.currency
        job = await record_submission(conn, gateway.runtime.bus, body, submission, currency=currency)
        accepted = JobAccepted(id=job.id, status=JobStatus.QUEUED)
        return JSONResponse(accepted.model_dump(), 202, headers={"Location": f"/v1/jobs/{job.id}"})

    return (await idempotency.run_prepared(body.model_dump(mode="json"), check, record)).response


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
        raise JobNotFound(job_id)
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
            conn,
            gateway.runtime.bus,
            job_id,
            requested_by=caller.name,
            role=caller.role,
            reason=(body or CancelRequest()).reason,
        )
    return JobView.of(job)
