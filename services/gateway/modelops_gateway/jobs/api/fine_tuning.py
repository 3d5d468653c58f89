"""OpenAI-compatible fine-tuning routes, so that the official `openai` client works unchanged: create, list,
retrieve, list events, cancel, over the same jobs as `POST /v1/jobs/training` (how the two map: the gateway README,
"Jobs"). Errors carry OpenAI's `error` member beside the problem+json members.

Produces: training.commands.v1 (StartTraining, CancelTraining), through the outbox."""

from __future__ import annotations

from typing import Annotated

import asyncpg
from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse
from modelops_shared.openai_errors import OpenAIErrorRoute

from ...deps import GatewayDep
from ...web.auth import Developer, Viewer
from ...web.idempotency import Idempotent
from ...web.openapi import problems
from ..domain import JobNotFound
from ..openai_schemas import (
    FineTuningJob,
    FineTuningJobEvent,
    FineTuningJobEventList,
    FineTuningJobList,
    FineTuningJobRequest,
)
from ..references import Fields
from ..store import Job, events_before, get_job, list_jobs
from ..submission import Submission, cancel, check_submission, record_submission
from . import JobId

FIELDS = Fields(base_model="model", dataset="training_file", dataset_version="training_file")
_EVENT_ID = r"^ftevent-[0-9a-f]+-[0-9]{1,18}$"  # an event's seq: a bigint, so at most 18 digits

router = APIRouter(
    prefix="/v1/fine_tuning/jobs",
    tags=["fine-tuning (OpenAI)"],
    route_class=OpenAIErrorRoute,
    responses=problems(401, 403, 422, 429),
)


async def _job_or_404(gateway: GatewayDep, job_id: str) -> Job:
    job = await get_job(gateway.runtime.pool, job_id)
    if job is None:
        raise JobNotFound(job_id, what="fine-tuning job")
    return job


@router.post("", response_model=FineTuningJob, max_body_size=64 * 1024, responses=problems(402, 404, 413, 502, 503))
async def create_fine_tuning_job(
    body: FineTuningJobRequest, caller: Developer, gateway: GatewayDep, idempotency: Idempotent
) -> Response:
    """Fine-tune `model` on `training_file` (developer); honours `Idempotency-Key`. Its adapter is served as soon as
    it succeeds, as OpenAI serves `fine_tuned_model`, where the registry's policy allows it
    (`deploy.fine_tuning_jobs`)."""
    request = body.training_request()

    async def check(_: str) -> tuple[Submission, bool]:
        submission = await check_submission(
            gateway.runtime.pool,
            gateway.lookups,
            request,
            token_cost=gateway.token_cost,
            submitted_by=caller.name,
            fields=FIELDS,
            settings=gateway.settings,
        )
        policy = await gateway.lookups.policy()
        return submission, gateway.settings.gateway_deploy_fine_tuned and policy["deploy"]["fine_tuning_jobs"]

    async def record(conn: asyncpg.Connection, checked: tuple[Submission, bool]) -> Response:
        submission, deploy_when_completed = checked
        job = await record_submission(
            conn,
            gateway.runtime.bus,
            request,
            submission,
            currency=gateway.settings.gateway_prices.currency,
            deploy_when_completed=deploy_when_completed,
        )
        return JSONResponse(FineTuningJob.of(job).model_dump(mode="json"))

    return (await idempotency.run_prepared(body.model_dump(mode="json"), check, record)).response


@router.get("", response_model=FineTuningJobList)
async def list_fine_tuning_jobs(
    _: Viewer,
    gateway: GatewayDep,
    after: Annotated[str | None, Query(max_length=128, description="The last job id of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> FineTuningJobList:
    """Jobs, newest first."""
    jobs = await list_jobs(gateway.runtime.pool, status=None, kind=None, before=after, limit=limit + 1)
    return FineTuningJobList(data=[FineTuningJob.of(job) for job in jobs[:limit]], has_more=len(jobs) > limit)


@router.get("/{job_id}", response_model=FineTuningJob, responses=problems(404))
async def retrieve_fine_tuning_job(_: Viewer, gateway: GatewayDep, job_id: JobId) -> FineTuningJob:
    return FineTuningJob.of(await _job_or_404(gateway, job_id))


@router.get("/{job_id}/events", response_model=FineTuningJobEventList, responses=problems(404))
async def list_fine_tuning_events(
    _: Viewer,
    gateway: GatewayDep,
    job_id: JobId,
    after: Annotated[str | None, Query(pattern=_EVENT_ID, description="The last event id of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> FineTuningJobEventList:
    """The job's events, newest first."""
    job = await _job_or_404(gateway, job_id)
    before = int(after.rsplit("-", 1)[1]) if after else None
    events = await events_before(gateway.runtime.pool, job_id, before, limit=limit + 1)
    return FineTuningJobEventList(
        data=[FineTuningJobEvent.of(event, job) for event in events[:limit]], has_more=len(events) > limit
    )


@router.post("/{job_id}/cancel", response_model=FineTuningJob, responses=problems(404, 409))
async def cancel_fine_tuning_job(caller: Developer, gateway: GatewayDep, job_id: JobId) -> FineTuningJob:
    """Ask the job's worker to stop (developer): the job reads `cancelled` once the worker confirms; a finished job
    is a 409."""
    async with gateway.runtime.pool.acquire() as conn, conn.transaction():
        job = await cancel(
            conn,
            gateway.runtime.bus,
            job_id,
            requested_by=caller.name,
            role=caller.role,
            reason="cancelled through the API",
        )
    return FineTuningJob.of(job)
