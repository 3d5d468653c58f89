"""What jobs and deployments used, as their workers measured it (workers → gateway): the gateway prices it with its
price table, reports it per API key, job and deployment, and refuses jobs past a key's budget."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from .deployments import DEPLOYMENT_NAME
from .messages import Message
from .training import JobStatus


class ResourceUsage(BaseModel):
    """CPU-seconds of every process that did the work; GPU-seconds as wall time × GPUs held; the peak resident
    memory of those processes together; tokens processed (trained on, or prompt + completion)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    wall_seconds: float = Field(ge=0)
    cpu_seconds: float = Field(ge=0)
    gpu_seconds: float = Field(0.0, ge=0)
    peak_memory_bytes: int = Field(ge=0)
    tokens: int = Field(0, ge=0)


class JobUsageRecorded(Message):
    """A job's use, recorded with its outcome (the same transaction): the attempt that ended it."""

    type: ClassVar[str] = "modelops.usage.job.v1"
    subject_field: ClassVar[str] = "job_id"

    job_id: str
    kind: str = Field(description="training, quantization, evaluation or indexing")
    worker: str
    status: JobStatus
    usage: ResourceUsage


class DeploymentUsageRecorded(Message):
    """One inference replica's use for one deployment over a period: requests and tokens counted, the replica's CPU
    and GPU time shared among its deployments by tokens processed, the replica's peak memory (shared by all)."""

    type: ClassVar[str] = "modelops.usage.deployment.v1"
    subject_field: ClassVar[str] = "deployment"

    deployment: str = Field(pattern=DEPLOYMENT_NAME)
    replica: str
    period_start: datetime
    period_end: datetime
    requests: int = Field(ge=0)
    prompt_tokens: int = Field(ge=0)
    completion_tokens: int = Field(ge=0)
    usage: ResourceUsage
