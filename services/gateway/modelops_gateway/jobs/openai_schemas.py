"""OpenAI's fine-tuning objects, shaped as the official `openai` client parses them, built from the gateway's record
of a job: a request becomes a TrainingJobRequest, a job a `fine_tuning.job`, an event a `fine_tuning.job.event`."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from modelops_contracts import Hyperparameters, JobStatus, TrainingEventType
from modelops_contracts.artifacts import TEXT_PATTERN
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from . import domain
from .store import Job, JobEvent
from .submission import SUFFIX_PATTERN, TrainingJobRequest

DEFAULT_EPOCHS = 3
BASE_LEARNING_RATE = 2e-4  # what a learning_rate_multiplier of 1 means for a LoRA adapter
ORGANIZATION = "org-modelops"
_STATUS = {
    JobStatus.QUEUED: "queued",
    JobStatus.RUNNING: "running",
    JobStatus.COMPLETED: "succeeded",
    JobStatus.FAILED: "failed",
    JobStatus.CANCELLED: "cancelled",
}

Auto = Literal["auto"]


class HyperparameterRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    n_epochs: Auto | Annotated[int, Field(ge=1, le=50)] = "auto"
    batch_size: Auto | Annotated[int, Field(ge=1, le=1024)] = "auto"
    learning_rate_multiplier: Auto | Annotated[float, Field(ge=1e-6, le=50)] = "auto"


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

    model: str = Field(
        min_length=1, max_length=200, pattern=TEXT_PATTERN, description="A base model's name, or its artifact id"
    )
    training_file: str = Field(
        min_length=1, max_length=200, pattern=TEXT_PATTERN, description="A file id (= a dataset name)"
    )
    validation_file: None = Field(None, description="Not supported: `eval_split` of the training file is held out")
    hyperparameters: HyperparameterRequest | None = None
    method: MethodRequest | None = None
    suffix: str | None = Field(None, pattern=SUFFIX_PATTERN)
    seed: int | None = Field(None, ge=0, le=2**31 - 1)

    @field_validator("validation_file", mode="before")
    @classmethod
    def _no_validation_file(cls, value: object) -> None:
        if value is not None:
            raise ValueError("validation files are not supported; a share of the training file is held out instead")
        return None

    @model_validator(mode="after")
    def _trainable(self) -> FineTuningJobRequest:
        """A request whose hyperparameters the trainer would refuse (a multiplier so small the learning rate
        rounds to 0) is invalid here, not a failure later."""
        self.training_request()
        return self

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
            status=_STATUS[JobStatus(job.status)],
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
            case TrainingEventType.QUEUED:
                message = f"Created fine-tuning job: {job.id}"
            case TrainingEventType.STARTED:
                resumed = d.get("resumed_from_step") or 0
                message = "Fine-tuning job started" + (f", resumed from step {resumed}" if resumed else "")
            case TrainingEventType.PROGRESSED:
                kind = "metrics"
                message = f"Step {d['step']}/{d['total_steps']}: training loss={d['loss']:.4f}"
                data = {
                    "step": d["step"],
                    "total_steps": d["total_steps"],
                    "train_loss": d["loss"],
                    "learning_rate": d["learning_rate"],
                    "tokens_per_second": d["tokens_per_second"],
                }
            case TrainingEventType.CHECKPOINTED:
                message = f"Checkpoint saved at step {d['step']}"
            case domain.CANCEL_REQUESTED:
                message = f"Cancellation requested by {d['requested_by']}"
            case TrainingEventType.COMPLETED:
                message = f"New fine-tuned model created: {job.fine_tuned_model}"
                data = {"adapter_artifact_id": d["adapter_artifact_id"], "metrics": d["metrics"]}
            case TrainingEventType.FAILED:
                level = "error"
                message = f"Fine-tuning job failed: {d['reason']}"
            case TrainingEventType.CANCELLED:
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
