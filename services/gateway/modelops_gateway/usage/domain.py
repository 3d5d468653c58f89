"""The rules of usage: what a measured use costs, what a training job is expected to cost, and the refusal of a job
that would take its submitter past the budget left."""

from __future__ import annotations

from modelops_contracts import Hyperparameters, Resources, ResourceUsage
from modelops_shared.errors import DomainError, NotFound

from ..access.domain import NotTheOwner, Role
from ..settings import Prices

GIB = 1024**3


class BudgetExceeded(DomainError):
    slug = "budget-exceeded"
    status = 402


class NoBudget(NotFound):
    slug = "budget-not-found"


def whose_usage(name: str, role: Role, asked: str | None) -> str | None:
    """Whose usage a caller reads: their own, whatever they ask; an admin, the key asked for, or everyone's (None)."""
    if role is Role.ADMIN:
        return asked
    if asked not in (None, name):
        raise NotTheOwner(f"only an admin may read the usage of another key than yours ({asked})")
    return name


def price(usage: ResourceUsage, prices: Prices) -> float:
    """Time on cores and GPUs, peak memory held for the wall time, and tokens."""
    return (
        usage.cpu_seconds * prices.cpu_second
        + usage.gpu_seconds * prices.gpu_second
        + usage.peak_memory_bytes / GIB * usage.wall_seconds / 3600 * prices.memory_gib_hour
        + usage.tokens / 1e6 * prices.million_tokens
    )


def training_tokens(hyperparameters: Hyperparameters, resources: Resources, dataset_rows: int) -> int:
    """Tokens a training job will train on, at most: packed rows are `seq_len` tokens, `batch_size` of them per rank
    and step; an epoch budget counts every row as a full packed row (an upper bound)."""
    if hyperparameters.max_steps is not None:
        return hyperparameters.max_steps * hyperparameters.batch_size * resources.ranks * hyperparameters.seq_len
    return int((hyperparameters.epochs or 0.0) * dataset_rows * hyperparameters.seq_len)


def check_budget_left(owner: str, budget: float | None, committed: float, estimate: float, currency: str) -> None:
    """`committed`: what the owner's usage cost so far, plus the estimates of their jobs not measured yet. A budget of
    0 refuses every job, even one estimated at nothing."""
    if budget is None or (budget > 0 and committed + estimate <= budget):
        return
    raise BudgetExceeded(
        f"this job is estimated at {estimate:.4f} {currency}; {owner} has {max(budget - committed, 0.0):.4f}"
        f" {currency} left of a {budget:.4f} {currency} budget",
        budget=budget,
        committed=committed,
        estimate=estimate,
        currency=currency,
    )
