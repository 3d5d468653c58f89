"""Why a training job fails besides what every job can (modelops_shared.jobs), with the `error_type` that
TrainingFailed reports."""

from __future__ import annotations

from modelops_shared.jobs import JobFailure


class JobSpecError(JobFailure):
    """The spec asks for something impossible: a schema the method cannot use, an unknown plugin or module."""

    error_type = "invalid_spec"
