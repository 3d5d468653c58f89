"""HTTP routes of the evaluator besides the operational ones: which job this worker is evaluating."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from .deps import EvaluatorDep

router = APIRouter(prefix="/v1", tags=["evaluator"])


@router.get("/worker")
async def current_job(evaluator: EvaluatorDep) -> dict[str, Any]:
    """This worker's name and the job it is evaluating, if any."""
    job = evaluator.consumer.current
    return {"worker": evaluator.worker, "job_id": job.job_id if job else None}
