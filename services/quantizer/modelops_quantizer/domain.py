"""Why a quantization job fails, each with the `error_type` that QuantizationFailed reports."""

from __future__ import annotations


class JobFailure(Exception):
    """The job cannot succeed as submitted; retrying it would fail the same way."""

    error_type = "error"


class InputNotFound(JobFailure):
    """The model or adapter the job names does not exist."""

    error_type = "not_found"


class InputUnusable(JobFailure):
    """The model or adapter exists but may not be used: unregistered, revoked, failing verification, or an adapter
    of another base."""

    error_type = "input_unusable"


class ConversionFailed(JobFailure):
    """llama.cpp could not convert or quantize the model (an architecture it does not know, a broken file)."""

    error_type = "conversion_failed"
