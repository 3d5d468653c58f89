"""Why a job fails: each error carries the `error_type` that TrainingFailed reports."""

from __future__ import annotations


class JobFailure(Exception):
    """The job cannot succeed as submitted; retrying it would fail the same way."""

    error_type = "error"


class JobSpecError(JobFailure):
    """The spec asks for something impossible: a schema the method cannot use, an unknown plugin or module."""

    error_type = "invalid_spec"


class InputNotFound(JobFailure):
    """The base model or the dataset version the job names does not exist."""

    error_type = "not_found"


class InputUnusable(JobFailure):
    """The base model exists but may not be loaded: unregistered, revoked, or failing verification."""

    error_type = "input_unusable"
