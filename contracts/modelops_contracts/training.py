"""Training commands (gateway → trainer) and training events (trainer → registry, gateway), and the job vocabulary
every side shares: a job's status, its timeline's event types, and which of them end the job."""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .messages import Message
from .routing import RouterSpec


class JobStatus(StrEnum):
    """Where a training job stands. Completed, failed and cancelled are final: nothing changes a job after them."""

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_JOB_STATUSES


TERMINAL_JOB_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})


class TrainingEventType(StrEnum):
    """An entry of a job's timeline: one per training command or event the job received."""

    QUEUED = "queued"
    STARTED = "started"
    PROGRESSED = "progressed"
    CHECKPOINTED = "checkpointed"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @classmethod
    def of(cls, message: Message) -> TrainingEventType:
        """The timeline entry a StartTraining or training event makes; ValueError for any other message."""
        try:
            return _EVENT_TYPES[type(message)]
        except KeyError:
            raise ValueError(f"{message.type} is not a training event") from None

    @property
    def status(self) -> JobStatus:
        """The job's status once this entry is on its timeline."""
        return _STATUS_AFTER.get(self, JobStatus.RUNNING)

    @property
    def is_terminal(self) -> bool:
        return self.status.is_terminal


class AdapterSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    r: int = Field(16, ge=1, le=512)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: list[str] | Literal["all-linear"] = "all-linear"


class Hyperparameters(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    max_steps: int | None = Field(None, ge=1)
    epochs: float | None = Field(None, gt=0)
    learning_rate: float = Field(2e-4, gt=0, le=1)
    batch_size: int = Field(8, ge=1, le=1024)
    seq_len: int = Field(256, ge=8, le=131072)
    seed: int = 42

    @model_validator(mode="after")
    def _one_budget(self) -> Hyperparameters:
        if (self.max_steps is None) == (self.epochs is None):
            raise ValueError("give exactly one of max_steps or epochs")
        return self


class Resources(BaseModel):
    """How many processes train the job together, data parallel (torch.distributed): `workers` × `devices_per_worker`
    ranks, one process and one device each (a GPU, or on CPU a share of the cores), all on the worker that takes the
    job. `zero_stage` shards optimizer state and gradients (2) or the parameters too (3) with DeepSpeed ZeRO: CUDA
    only."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    workers: int = Field(1, ge=1, le=64)
    devices_per_worker: int = Field(1, ge=1, le=16)
    zero_stage: Literal[0, 2, 3] = Field(0, description="DeepSpeed ZeRO stage (CUDA); 0: plain DDP")

    @property
    def ranks(self) -> int:
        return self.workers * self.devices_per_worker


class PluginSpec(BaseModel):
    """Plugins named by their entry point in the `modelops.plugins` group of the worker's environment."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    loss: str | None = Field(None, description="Replaces the training loss (sft)")
    optimizer: str | None = Field(None, description="Builds the optimizer from the trainable parameters")
    metrics: list[str] = Field([], description="Extra evaluation metrics reported with the job's results")
    callbacks: list[str] = Field([], description="transformers TrainerCallbacks run during training")


class StartTraining(Message):
    """Command: fine-tune an adapter of `base_model` on one exact dataset version; or, with method `snn_router`,
    train a spiking router over the sentence embeddings of `base_model` (an embedding_model) on routing rows."""

    type: ClassVar[str] = "modelops.training.start.v1"
    subject_field: ClassVar[str] = "job_id"

    job_id: str
    submitted_by: str
    base_model: str = Field(
        description="Artifact id of the base model, or its name (then the latest registered base_model of that name);"
        " for snn_router, the embedding_model that reads the prompts"
    )
    dataset: str
    dataset_version: int = Field(ge=0)
    method: Literal["sft", "dpo", "snn_router"] = "sft"
    adapter: AdapterSpec = AdapterSpec()
    quantization: Literal["none", "nf4"] = "none"
    hyperparameters: Hyperparameters
    eval_split: float = Field(0.1, ge=0.0, lt=1.0)
    suffix: str | None = None
    plugins: PluginSpec | None = None
    router: RouterSpec | None = Field(None, description="snn_router: the network (defaults when absent)")
    resources: Resources = Resources()


class CancelTraining(Message):
    """Command: stop a queued or running job."""

    type: ClassVar[str] = "modelops.training.cancel.v1"
    subject_field: ClassVar[str] = "job_id"

    job_id: str
    requested_by: str
    reason: str = ""


class TrainingStarted(Message):
    type: ClassVar[str] = "modelops.training.started.v1"
    subject_field: ClassVar[str] = "job_id"

    job_id: str
    worker: str
    total_steps: int = Field(ge=0)
    resumed_from_step: int = Field(0, ge=0)


class TrainingProgressed(Message):
    type: ClassVar[str] = "modelops.training.progressed.v1"
    subject_field: ClassVar[str] = "job_id"

    job_id: str
    step: int = Field(ge=0)
    total_steps: int = Field(ge=0)
    loss: float
    learning_rate: float
    tokens_per_second: float = Field(ge=0)
    eta_seconds: float = Field(ge=0)


class TrainingCheckpointed(Message):
    type: ClassVar[str] = "modelops.training.checkpointed.v1"
    subject_field: ClassVar[str] = "job_id"

    job_id: str
    step: int = Field(ge=0)
    uri: str


class TrainingCompleted(Message):
    type: ClassVar[str] = "modelops.training.completed.v1"
    subject_field: ClassVar[str] = "job_id"

    job_id: str
    adapter_artifact_id: str = Field(description="The artifact the job produced: an adapter, or a router (snn_router)")
    steps: int = Field(ge=0)
    duration_seconds: float = Field(ge=0)
    metrics: dict[str, float] = {}


class TrainingFailed(Message):
    type: ClassVar[str] = "modelops.training.failed.v1"
    subject_field: ClassVar[str] = "job_id"

    job_id: str
    reason: str
    error_type: str = "error"


class TrainingCancelled(Message):
    type: ClassVar[str] = "modelops.training.cancelled.v1"
    subject_field: ClassVar[str] = "job_id"

    job_id: str
    at_step: int = Field(0, ge=0)
    reason: str = ""


_EVENT_TYPES: dict[type[Message], TrainingEventType] = {
    StartTraining: TrainingEventType.QUEUED,
    TrainingStarted: TrainingEventType.STARTED,
    TrainingProgressed: TrainingEventType.PROGRESSED,
    TrainingCheckpointed: TrainingEventType.CHECKPOINTED,
    TrainingCompleted: TrainingEventType.COMPLETED,
    TrainingFailed: TrainingEventType.FAILED,
    TrainingCancelled: TrainingEventType.CANCELLED,
}
_STATUS_AFTER = {
    TrainingEventType.QUEUED: JobStatus.QUEUED,
    TrainingEventType.COMPLETED: JobStatus.COMPLETED,
    TrainingEventType.FAILED: JobStatus.FAILED,
    TrainingEventType.CANCELLED: JobStatus.CANCELLED,
}
