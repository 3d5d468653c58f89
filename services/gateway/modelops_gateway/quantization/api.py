"""Quantization job routes: submit (developer, idempotent; the model and adapter are checked with the registry before
anything is queued), read (viewer), cancel (submitter or admin).

Produces: quantization.commands.v1 (StartQuantization, CancelQuantization), through the outbox."""

from __future__ import annotations

from typing import Any

import asyncpg
from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from modelops_contracts import StartQuantization

from ..deps import GatewayDep
from ..jobs.api import JobId
from ..jobs.domain import JobNotFound
from ..jobs.schemas import CancelRequest
from ..web.auth import Developer, Viewer
from ..web.idempotency import Idempotent
from ..web.openapi import problems
from .schemas import QuantizationJobRequest, QuantizationJobView
from .store import JOBS
from .submission import cancel, check_submission, record_submission

JSON_BODY_LIMIT = 16 * 1024

router = APIRouter(prefix="/v1/jobs/quantization", tags=["jobs"], responses=problems(401, 403, 429))


@router.post(
    "",
    status_code=202,
    response_model=QuantizationJobView,
    max_body_size=JSON_BODY_LIMIT,
    responses=problems(404, 413, 422, 502, 503),
)
async def submit_quantization_job(
    body: QuantizationJobRequest, caller: Developer, gateway: GatewayDep, idempotency: Idempotent
) -> Response:
    """Quantize a base model, with an adapter merged into it or not (developer): each format becomes a signed
    `quantized_model` holding one GGUF, with its perplexity change, size and speed in its metrics. Follow
    `GET /v1/jobs/quantization/{id}`."""

    async def check(_: str) -> tuple[StartQuantization, list[str]]:
        return await check_submission(
            gateway.lookups,
            model=body.model,
            adapter_ref=body.adapter,
            formats=body.formats,
            name=body.name,
            submitted_by=caller.name,
        )

    async def record(conn: asyncpg.Connection, checked: tuple[StartQuantization, list[str]]) -> Response:
        job = await record_submission(conn, gateway.runtime.bus, *checked)
        view = QuantizationJobView.of(job).model_dump(mode="json")
        return JSONResponse(view, 202, headers={"Location": f"/v1/jobs/quantization/{job['id']}"})

    return (await idempotency.run_prepared(body.model_dump(mode="json"), check, record)).response


@router.get("/{job_id}", response_model=QuantizationJobView, responses=problems(404, 422))
async def get_quantization_job(_: Viewer, gateway: GatewayDep, job_id: JobId) -> QuantizationJobView:
    """One job: status, the stage it is at, and once completed the artifact and metrics of each format."""
    job = await JOBS.get(gateway.runtime.pool, job_id)
    if job is None:
        raise JobNotFound(job_id, what="quantization job")
    return QuantizationJobView.of(job)


@router.post(
    "/{job_id}/cancel",
    status_code=202,
    response_model=QuantizationJobView,
    max_body_size=JSON_BODY_LIMIT,
    responses=problems(404, 409, 413, 422),
)
async def cancel_quantization_job(
    caller: Developer, gateway: GatewayDep, job_id: JobId, body: CancelRequest | None = None
) -> QuantizationJobView:
    """Ask the job's worker to stop (its submitter or an admin); the job is `cancelled` once the worker confirms,
    before its next format. A finished job is a 409."""
    async with gateway.runtime.pool.acquire() as conn, conn.transaction():
        job: dict[str, Any] = await cancel(
            conn,
            gateway.runtime.bus,
            job_id,
            requested_by=caller.name,
            role=caller.role,
            reason=(body or CancelRequest()).reason,
        )
    return QuantizationJobView.of(job)
