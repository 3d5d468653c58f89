"""OpenAI-compatible fine-tuning, so that the official `openai` client works unchanged: create, list, retrieve, list
events, cancel, with objects shaped as the client parses them. A job is the same job as `POST /v1/jobs/training`
makes: `model` is a base model's name or artifact id, `training_file` a file id, which is a dataset's name (its latest
version); `supervised` trains sft, `dpo` trains dpo. The fine-tuned model is `ft:<base>:<suffix>:<job id>`, and, as
OpenAI users expect, it answers once the job succeeds: the job's adapter is deployed as `ft-<job id>` then (unless
MODELOPS_GATEWAY_DEPLOY_FINE_TUNED is off; see jobs/projection.py). Errors carry OpenAI's `error` member beside the
problem+json members.

Produces: training.commands.v1 (StartTraining, CancelTraining), through the outbox."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import asyncpg
from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse
from modelops_contracts import Hyperparameters
from modelops_shared.problems import Problem
from pydantic import BaseModel, ConfigDict, Field, field_validator

from .auth import Developer, Viewer
from .context import GatewayDep
from .idempotency import Idempotent
from .jobs import SUFFIX_PATTERN, Fields, Job, JobEvent, TrainingJobRequest, cancel, events_before, get_job, list_jobs
from .jobs import submit as submit_job
from .openai_errors import OpenAIErrorRoute
from .openapi import problems
from .training_jobs import JobId

DEFAULT_EPOCHS = 3
BASE_LEARNING_RATE = 2e-4  # what a learning_rate_multiplier of 1 means for a LoRA adapter
ORGANIZATION = "org-modelops"
FIELDS = Fields(base_model="model", dataset="training_file", dataset_version="training_file")
_STATUS = {
    "queued": "queued",
    "running": "running",
    "completed": "succeeded",
    "failed": "failed",
    "cancelled": "cancelled",
}
_EVENT_ID = r"^ftevent-[0-9a-f]+-[0-9]+$"

Auto = Literal["auto"]

router = APIRouter(
    prefix="/v1/fine_tuning/jobs",
    tags=["fine-tuning (OpenAI)"],
    route_class=OpenAIErrorRoute,
    responses=problems(401, 403, 422, 429),
)


class HyperparameterRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    n_epochs: Auto | Annotated[int, Field(ge=1, le=50)] = "auto"
    batch_size: Auto | Annotated[int, Field(ge=1, le=1024)] = "auto"
    learning_rate_multiplier: Auto | Annotated[float, Field(gt=0, le=50)] = "auto"


class DpoHyperparameterRequest(HyperparameterRequest):
    beta: Auto = Field("auto", description="Only `auto`: the trainer uses its own DPO beta")


class SupervisedMethodRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hyperparameters: HyperparameterRequest | None = None


class DpoMethodRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hyperparameters: DpoHyperparameterRequest | None = None


class MethodRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["supervised", "dpo"]
    supervised: SupervisedMethodRequest | None = None
    dpo: DpoMethodRequest | None = None


class FineTuningJobRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=200, description="A base model's name, or its artifact id")
    training_file: str = Field(min_length=1, max_length=200, description="A file id (= a dataset name)")
    validation_file: str | None = Field(
        None, description="Not supported: `eval_split` of the training file is held out"
    )
    hyperparameters: HyperparameterRequest | None = None
    method: MethodRequest | None = None
    suffix: str | None = Field(None, pattern=SUFFIX_PATTERN)
    seed: int | None = Field(None, ge=0, le=2**31 - 1)

    @field_validator("validation_file")
    @classmethod
    def _no_validation_file(cls, value: str | None) -> None:
        if value is not None:
            raise ValueError("validation files are not supported; a share of the training file is held out instead")

    def training_request(self) -> TrainingJobRequest:
        method = self.method.type if self.method else "supervised"
        chosen = self.hyperparameters or HyperparameterRequest()
        if self.method and self.method.supervised and self.method.supervised.hyperparameters:
            chosen = self.method.supervised.hyperparameters
        if self.method and self.method.dpo and self.method.dpo.hyperparameters:
            chosen = self.method.dpo.hyperparameters
        hyperparameters: dict[str, Any] = {"epochs": DEFAULT_EPOCHS if chosen.n_epochs == "auto" else chosen.n_epochs}
        if chosen.batch_size != "auto":
            hyperparameters["batch_size"] = chosen.batch_size
        if chosen.learning_rate_multiplier != "auto":
            hyperparameters["learning_rate"] = BASE_LEARNING_RATE * chosen.learning_rate_multiplier
        if self.seed is not None:
            hyperparameters["seed"] = self.seed
        return TrainingJobRequest(
            base_model=self.model,
            dataset=self.training_file,
            method="dpo" if method == "dpo" else "sft",
            hyperparameters=Hyperparameters(**hyperparameters),
            suffix=self.suffix,
        )


class JobError(BaseModel):
    code: str
    message: str
    param: str | None = None


class HyperparameterView(BaseModel):
    n_epochs: Auto | int | float | None
    batch_size: Auto | int | None
    learning_rate_multiplier: Auto | float | None


class FineTuningJob(BaseModel):
    """OpenAI's `fine_tuning.job` object."""

    id: str
    object: Literal["fine_tuning.job"] = "fine_tuning.job"
    created_at: int
    finished_at: int | None
    estimated_finish: int | None
    model: str
    fine_tuned_model: str | None
    organization_id: str
    result_files: list[str]
    status: Literal["validating_files", "queued", "running", "succeeded", "failed", "cancelled"]
    trained_tokens: int | None
    training_file: str
    validation_file: str | None
    hyperparameters: HyperparameterView
    method: dict[str, Any]
    seed: int
    error: JobError | None
    user_provided_suffix: str | None
    integrations: list[dict[str, Any]] | None = None
    metadata: dict[str, str] | None = None

    @classmethod
    def of(cls, job: Job) -> FineTuningJob:
        command = job.command
        spec = command.hyperparameters
        epochs = spec.epochs
        hyperparameters = HyperparameterView(
            n_epochs=int(epochs) if epochs is not None and epochs.is_integer() else epochs,
            batch_size=spec.batch_size,
            learning_rate_multiplier=round(spec.learning_rate / BASE_LEARNING_RATE, 6),
        )
        method_type = "dpo" if command.method == "dpo" else "supervised"
        method_hyperparameters = hyperparameters.model_dump() | ({"beta": "auto"} if method_type == "dpo" else {})
        return cls(
            id=job.id,
            created_at=int(job.created_at.timestamp()),
            finished_at=int(job.finished_at.timestamp()) if job.finished_at else None,
            estimated_finish=int(job.estimated_finish.timestamp()) if job.estimated_finish else None,
            model=job.base_model,
            fine_tuned_model=job.fine_tuned_model,
            organization_id=ORGANIZATION,
            result_files=[],
            status=_STATUS[job.status],
            trained_tokens=None,  # training events do not report it
            training_file=job.dataset,
            validation_file=None,
            hyperparameters=hyperparameters,
            method={"type": method_type, method_type: {"hyperparameters": method_hyperparameters}},
            seed=spec.seed,
            error=JobError(code=job.error_type or "error", message=job.failure_reason) if job.failure_reason else None,
            user_provided_suffix=command.suffix,
        )


class FineTuningJobList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FineTuningJob]
    has_more: bool


class FineTuningJobEvent(BaseModel):
    """OpenAI's `fine_tuning.job.event` object."""

    id: str
    object: Literal["fine_tuning.job.event"] = "fine_tuning.job.event"
    created_at: int
    level: Literal["info", "warn", "error"]
    message: str
    type: Literal["message", "metrics"]
    data: dict[str, Any]

    @classmethod
    def of(cls, event: JobEvent, job: Job) -> FineTuningJobEvent:
        level: Literal["info", "warn", "error"] = "info"
        kind: Literal["message", "metrics"] = "message"
        data: dict[str, Any] = {}
        d = event.data
        match event.type:
            case "queued":
                message = f"Created fine-tuning job: {job.id}"
            case "started":
                resumed = d.get("resumed_from_step") or 0
                message = "Fine-tuning job started" + (f", resumed from step {resumed}" if resumed else "")
            case "progressed":
                kind = "metrics"
                message = f"Step {d['step']}/{d['total_steps']}: training loss={d['loss']:.4f}"
                data = {
                    "step": d["step"],
                    "total_steps": d["total_steps"],
                    "train_loss": d["loss"],
                    "learning_rate": d["learning_rate"],
                    "tokens_per_second": d["tokens_per_second"],
                }
            case "checkpointed":
                message = f"Checkpoint saved at step {d['step']}"
            case "cancel_requested":
                message = f"Cancellation requested by {d['requested_by']}"
            case "completed":
                message = f"New fine-tuned model created: {job.fine_tuned_model}"
                data = {"adapter_artifact_id": d["adapter_artifact_id"], "metrics": d["metrics"]}
            case "failed":
                level = "error"
                message = f"Fine-tuning job failed: {d['reason']}"
            case "cancelled":
                message = f"Fine-tuning job cancelled at step {d.get('at_step', 0)}"
            case _:
                message = event.type
        return cls(
            id=f"ftevent-{job.id.removeprefix('ftjob-')}-{event.seq}",
            created_at=int(event.at.timestamp()),
            level=level,
            message=message,
            type=kind,
            data=data,
        )


class FineTuningJobEventList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FineTuningJobEvent]
    has_more: bool


async def _job_or_404(gateway: GatewayDep, job_id: str) -> Job:
    job = await get_job(gateway.runtime.pool, job_id)
    if job is None:
        raise Problem(404, "job-not-found", f"no fine-tuning job {job_id}")
    return job


@router.post("", response_model=FineTuningJob, max_body_size=64 * 1024, responses=problems(404, 413, 502, 503))
async def create_fine_tuning_job(
    body: FineTuningJobRequest, caller: Developer, gateway: GatewayDep, idempotency: Idempotent
) -> Response:
    """Fine-tune `model` on `training_file` (developer); honours `Idempotency-Key`."""

    async def create(conn: asyncpg.Connection) -> Response:
        job = await submit_job(
            conn,
            gateway.lookups,
            gateway.runtime.bus,
            body.training_request(),
            submitted_by=caller.name,
            fields=FIELDS,
            wait_s=gateway.settings.gateway_registry_wait_s,
            deploy_when_completed=gateway.settings.gateway_deploy_fine_tuned,
        )
        return JSONResponse(FineTuningJob.of(job).model_dump(mode="json"))

    return (await idempotency.run(body.model_dump(mode="json"), create)).response


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
            conn, gateway.runtime.bus, job_id, requested_by=caller.name, reason="cancelled through the API"
        )
    return FineTuningJob.of(job)
