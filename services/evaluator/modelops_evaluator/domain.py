"""Why an evaluation job fails besides what every job can (modelops_shared.jobs), with the `error_type` that
EvaluationFailed reports."""

from __future__ import annotations

from modelops_shared.jobs import JobFailure


class SuiteUnusable(JobFailure):
    """The suite's rows cannot be scored: a schema with no expected answers, a row with none, no rows at all."""

    error_type = "invalid_suite"


class MetricUnusable(JobFailure):
    """A metric is unknown, its parameters are wrong, or the subject cannot give what it needs (token
    log-probabilities from a deployment)."""

    error_type = "invalid_metric"


class SubjectFailed(JobFailure):
    """The model or deployment could not answer: it is not served, or refused a request."""

    error_type = "subject_failed"
