"""HTTP routes of the trainer besides the operational ones: which job this worker is training."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from .deps import TrainerDep

router = APIRouter(prefix="/v1", tags=["trainer"])


@router.get("/worker")
async def current_job(trainer: TrainerDep) -> dict[str, Any]:
    """This worker's name and the job it is training, if any."""
    job = trainer.consumer.current
    return {"worker": trainer.worker, "job_id": job.job_id if job else None}
