"""HTTP routes of the quantizer besides the operational ones: which job this worker is quantizing."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from .deps import QuantizerDep

router = APIRouter(prefix="/v1", tags=["quantizer"])


@router.get("/worker")
async def current_job(quantizer: QuantizerDep) -> dict[str, Any]:
    """This worker's name and the job it is quantizing, if any."""
    job = quantizer.consumer.current
    return {"worker": quantizer.worker, "job_id": job.job_id if job else None}
