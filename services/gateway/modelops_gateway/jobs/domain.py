"""The refusals of job rules, raised by submission, cancellation and reference checks; the routes' problem handlers
answer each as problem+json (its `param` names the request field at fault, for OpenAI's error shape)."""

from __future__ import annotations

from modelops_contracts import Hyperparameters, Resources
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


class TrainingBudgetTooLarge(Invalid):
    slug = "training-budget-too-large"


def check_budget(
    hyperparameters: Hyperparameters,
    resources: Resources,
    *,
    max_steps: int,
    max_epochs: float,
    max_ranks: int,
    param: str,
) -> None:
    """The deployment's policy on how long and how wide one job may train: a job past it is refused, not queued."""
    if resources.ranks > max_ranks:
        raise TrainingBudgetTooLarge(
            f"{resources.workers} workers × {resources.devices_per_worker} devices is over this platform's limit of"
            f" {max_ranks} training processes",
            param="resources",
        )
    if hyperparameters.max_steps is not None and hyperparameters.max_steps > max_steps:
        raise TrainingBudgetTooLarge(
            f"{hyperparameters.max_steps} steps is over this platform's limit of {max_steps}", param=param
        )
    if hyperparameters.epochs is not None and hyperparameters.epochs > max_epochs:
        raise TrainingBudgetTooLarge(
            f"{hyperparameters.epochs:g} epochs is over this platform's limit of {max_epochs:g}", param=param
        )
