"""Why a quantization job fails besides what every job can (modelops_shared.jobs), with the `error_type` that
QuantizationFailed reports."""

from __future__ import annotations

from modelops_shared.jobs import JobFailure


class ConversionFailed(JobFailure):
    """llama.cpp could not convert or quantize the model (an architecture it does not know, a broken file)."""

    error_type = "conversion_failed"


class NeedsGpu(JobFailure):
    """AWQ and GPTQ are made on a CUDA GPU by llm-compressor; this worker cannot."""

    error_type = "needs_cuda"
