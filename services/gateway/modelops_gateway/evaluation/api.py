"""Evaluation job routes: submit (developer, idempotent; the model, adapter or deployment and the suite are checked
before anything is queued), read (viewer), cancel (submitter or admin).

Produces: evaluation.commands.v1 (StartEvaluation, CancelEvaluation), through the outbox."""

from __future__ import annotations

from typing import Any

import asyncpg
from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from modelops_contracts import StartEvaluation

from ..deps import GatewayDep, InferenceDep
from ..jobs.api import JobId
from ..jobs.domain import JobNotFound
from ..jobs.schemas import CancelRequest
from ..web.auth import Developer, Viewer
from ..web.idempotency import Idempotent
from ..web.openapi import problems
from .schemas import EvaluationJobRequest, EvaluationJobView
from .store import JOBS
from .submission import cancel, check_submission, record_submission

JSON_BODY_LIMIT = 16 * 1024

router = APIRouter(prefix="/v1/jobs/evaluation", tags=["jobs"], responses=problems(401, 403, 429))


@router.post(
    "",
    status_code=202,
    response_model=EvaluationJobView,
    max_body_size=JSON_BODY_LIMIT,
    responses=problems(404, 413, 422, 502, 503),
)
async def submit_evaluation_job(
    body: EvaluationJobRequest, caller: Developer, gateway: GatewayDep, inference: InferenceDep, idempotency: Idempotent
) -> Response:
    """Score a model (with an adapter or not), or a deployment through its OpenAI API, on one version of a dataset
    (developer): every item answered greedily and scored by each metric, the whole a signed `eval_report` (items as
    Parquet, aggregates in its metrics) that promotions can be gated on. Follow `GET /v1/jobs/evaluation/{id}`."""

    async def check(_: str) -> StartEvaluation:
        return await check_submission(
            gateway.runtime.pool,
            gateway.lookups,
            inference,
            body,
            submitted_by=caller.name,
            wait_s=gateway.settings.gateway_registry_wait_s,
        )

    async def record(conn: asyncpg.Connection, command: StartEvaluation) -> Response:
        job = await record_submission(conn, gateway.runtime.bus, command)
        view = EvaluationJobView.of(job).model_dump(mode="json")
        return JSONResponse(view, 202, headers={"Location": f"/v1/jobs/evaluation/{job['id']}"})

    return (await idempotency.run_prepared(body.model_dump(mode="json"), check, record)).response


@router.get("/{job_id}", response_model=EvaluationJobView, responses=problems(404, 422))
async def get_evaluation_job(_: Viewer, gateway: GatewayDep, job_id: JobId) -> EvaluationJobView:
    """One job: status, items answered, and once completed the report artifact and its aggregates."""
    job = await JOBS.get(gateway.runtime.pool, job_id)
    if job is None:
        raise JobNotFound(job_id, what="evaluation job")
    return EvaluationJobView.of(job)


@router.post(
    "/{job_id}/cancel",
    status_code=202,
    response_model=EvaluationJobView,
    max_body_size=JSON_BODY_LIMIT,
    responses=problems(404, 409, 413, 422),
)
async def cancel_evaluation_job(
    caller: Developer, gateway: GatewayDep, job_id: JobId, body: CancelRequest | None = None
) -> EvaluationJobView:
    """Ask the job's worker to stop (its submitter or an admin); the job is `cancelled` once the worker confirms,
    before its next batch of items. A finished job is a 409."""
    async with gateway.runtime.pool.acquire() as conn, conn.transaction():
        job: dict[str, Any] = await cancel(
            conn,
            gateway.runtime.bus,
            job_id,
            requested_by=caller.name,
            role=caller.role,
            reason=(body or CancelRequest()).reason,
        )
    return EvaluationJobView.of(job)
