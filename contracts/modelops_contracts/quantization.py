"""Quantization commands (gateway → quantizer) and events (quantizer → gateway): a base model, with an adapter merged
into it or not, written as GGUF files in llama.cpp's formats, each measured and submitted as a quantized_model."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, ClassVar

from pydantic import AfterValidator, BaseModel, Field

from .messages import Message


class QuantizationFormat(StrEnum):
    """What a quantization job can write. The GGUF types are llama.cpp's names (`llama-quantize --help`); LORA_F16 is
    the adapter alone as a GGUF LoRA, applied at run time over a GGUF base. AWQ_W4A16 and GPTQ_W4A16 are 4-bit weights
    (16-bit activations) by llm-compressor, as compressed-tensors safetensors that vLLM serves: they need a CUDA GPU."""

    F16 = "F16"
    Q8_0 = "Q8_0"
    Q5_K_M = "Q5_K_M"
    Q4_K_M = "Q4_K_M"
    Q4_0 = "Q4_0"
    LORA_F16 = "LORA_F16"
    AWQ_W4A16 = "AWQ_W4A16"
    GPTQ_W4A16 = "GPTQ_W4A16"


# Made by llm-compressor on a CUDA GPU, served by vLLM; the others are GGUF files made and served by llama.cpp.
GPU_FORMATS = frozenset({QuantizationFormat.AWQ_W4A16, QuantizationFormat.GPTQ_W4A16})


def _each_once(formats: list[QuantizationFormat]) -> list[QuantizationFormat]:
    if len(set(formats)) != len(formats):
        raise ValueError("a format is named twice")
    return formats


# What a job asks for: one format or more, each once.
QuantizationFormats = Annotated[
    list[QuantizationFormat],
    Field(min_length=1, max_length=len(QuantizationFormat), json_schema_extra={"uniqueItems": True}),
    AfterValidator(_each_once),
]

# Published llama.cpp tables for 0.5B-2B models: Q8_0 +0.1-0.4 % perplexity, Q4_K_M +1.7-3.2 %, Q4_0 +7-13 %.
SMALL_MODEL_PARAMETERS = 3_000_000_000


def quantization_warnings(formats: list[QuantizationFormat], parameters: int | None) -> list[str]:
    """What to know before trusting an output: Q4_0 costs a small model (or one of unknown size) far more than
    K-quants do."""
    if QuantizationFormat.Q4_0 not in formats or (parameters is not None and parameters >= SMALL_MODEL_PARAMETERS):
        return []
    size = f"a {parameters / 1e6:.0f}M-parameter model" if parameters else "a model under 3B parameters"
    return [f"Q4_0 on {size}: published llama.cpp tables show +7-13 % perplexity (Q4_K_M: +2-3 %); prefer Q4_K_M"]


class StartQuantization(Message):
    """Command: write `model` (with `adapter` merged, when given) in each of `formats`."""

    type: ClassVar[str] = "modelops.quantization.start.v1"
    subject_field: ClassVar[str] = "job_id"

    job_id: str
    submitted_by: str
    model: str = Field(description="Artifact id of the base model")
    adapter: str | None = Field(None, description="Artifact id of an adapter of that base, merged before quantizing")
    formats: QuantizationFormats
    name: str | None = Field(None, description="The outputs' name; default <model name>[-<adapter name>]")


class CancelQuantization(Message):
    """Command: stop a queued or running quantization job."""

    type: ClassVar[str] = "modelops.quantization.cancel.v1"
    subject_field: ClassVar[str] = "job_id"

    job_id: str
    requested_by: str
    reason: str = ""


class QuantizationStarted(Message):
    type: ClassVar[str] = "modelops.quantization.started.v1"
    subject_field: ClassVar[str] = "job_id"

    job_id: str
    worker: str
    formats: list[QuantizationFormat]
    resumed: list[QuantizationFormat] = Field([], description="Formats already written by an earlier attempt")


class QuantizationProgressed(Message):
    type: ClassVar[str] = "modelops.quantization.progressed.v1"
    subject_field: ClassVar[str] = "job_id"

    job_id: str
    stage: str = Field(description="merging | converting | quantizing | measuring | uploading")
    format: QuantizationFormat | None = None
    done: int = Field(ge=0, description="Formats finished so far")
    total: int = Field(ge=0)


class QuantizedOutput(BaseModel):
    format: QuantizationFormat
    artifact_id: str
    metrics: dict[str, float] = {}


class QuantizationCompleted(Message):
    type: ClassVar[str] = "modelops.quantization.completed.v1"
    subject_field: ClassVar[str] = "job_id"

    job_id: str
    outputs: list[QuantizedOutput]
    duration_seconds: float = Field(ge=0)


class QuantizationFailed(Message):
    type: ClassVar[str] = "modelops.quantization.failed.v1"
    subject_field: ClassVar[str] = "job_id"

    job_id: str
    reason: str
    error_type: str = "error"


class QuantizationCancelled(Message):
    type: ClassVar[str] = "modelops.quantization.cancelled.v1"
    subject_field: ClassVar[str] = "job_id"

    job_id: str
    reason: str = ""
