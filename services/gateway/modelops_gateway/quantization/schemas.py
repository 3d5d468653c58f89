"""The bodies of the quantization jobs API: what a client sends and what it reads back."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from modelops_contracts import JobStatus, QuantizationFormats, QuantizedOutput
from modelops_contracts.artifacts import TEXT_PATTERN
from pydantic import BaseModel, ConfigDict, Field

from ..jobs.schemas import Failure


class QuantizationJobRequest(BaseModel):
    """Write a base model, with an adapter merged into it or not, in each of `formats`."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=200, pattern=TEXT_PATTERN, description="A base_model artifact id")
    adapter: str | None = Field(
        None, min_length=1, max_length=200, pattern=TEXT_PATTERN, description="An adapter artifact id of that base"
    )
    formats: QuantizationFormats = Field(
        description="GGUF types made by llama.cpp (F16, Q8_0, Q5_K_M, Q4_K_M, Q4_0), or LORA_F16: the adapter alone"
    )
    name: str | None = Field(
        None, min_length=1, max_length=120, pattern=TEXT_PATTERN, description="The outputs' name (a suffix is added)"
    )


class QuantizationProgress(BaseModel):
    stage: str | None = Field(description="converting | quantizing | uploading, while running")
    done: int = Field(description="Formats finished")
    total: int


class QuantizationJobView(BaseModel):
    """A quantization job as the gateway knows it from the quantizer's events."""

    id: str
    kind: str = "quantization"
    status: JobStatus
    submitted_by: str
    model: str = Field(description="The base model artifact")
    adapter: str | None = Field(description="The adapter artifact merged into it")
    spec: dict[str, Any] = Field(description="The StartQuantization command sent to the workers")
    worker: str | None
    progress: QuantizationProgress
    outputs: list[QuantizedOutput] = Field(description="One quantized_model artifact per format, once completed")
    warnings: list[str] = Field(description="What to know before trusting an output (Q4_0 on a small model)")
    failure: Failure | None
    cancel_requested_at: datetime | None
    cancel_requested_by: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime

    @classmethod
    def of(cls, job: dict[str, Any]) -> QuantizationJobView:
        failure = Failure(reason=job["failure_reason"], error_type=job["error_type"]) if job["failure_reason"] else None
        progress = QuantizationProgress(stage=job["stage"], done=job["done"], total=job["total"])
        return cls(
            id=job["id"],
            status=job["status"],
            submitted_by=job["submitted_by"],
            model=job["model_id"],
            adapter=job["adapter_id"],
            spec=job["spec"],
            worker=job["worker"],
            progress=progress,
            outputs=job["outputs"],
            warnings=job["warnings"],
            failure=failure,
            cancel_requested_at=job["cancel_requested_at"],
            cancel_requested_by=job["cancel_requested_by"],
            created_at=job["created_at"],
            started_at=job["started_at"],
            finished_at=job["finished_at"],
            updated_at=job["updated_at"],
        )
