"""The refusals of job rules, raised by submission, cancellation and reference checks; the routes' problem handlers
answer each as problem+json (its `param` names the request field at fault, for OpenAI's error shape)."""

from __future__ import annotations

from modelops_shared.errors import Conflict, Invalid, NotFound

# The one entry of a job's timeline that the gateway writes itself; the others are TrainingEventType's.
CANCEL_REQUESTED = "cancel_requested"


class JobNotFound(NotFound):
    slug = "job-not-found"

    def __init__(self, job_id: str, *, what: str = "job") -> None:
        super().__init__(f"no {what} {job_id}")


class JobFinished(Conflict):
    slug = "job-finished"

    def __init__(self, job_id: str, status: str) -> None:
        super().__init__(f"job {job_id} is already {status}", job_status=status)


class UnknownReference(NotFound):
    """A base model or dataset (version) the registry has not registered; `slug=` says which."""


class UnusableReference(Invalid):
    """A registered artifact a job cannot train with (revoked, of another kind, rows of another schema); `slug=`
    says which."""
