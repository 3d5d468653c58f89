"""Submitting and cancelling training jobs. A job's row, its first event and its StartTraining command commit in one
transaction, after the registry confirmed what the job names; a cancel records the request and sends CancelTraining
the same way. The outbox relay publishes the commands.

Produces: training.commands.v1 (StartTraining, CancelTraining)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import asyncpg
from modelops_contracts import (
    AdapterSpec,
    CancelTraining,
    Hyperparameters,
    PluginSpec,
    Resources,
    RouterSpec,
    StartTraining,
)
from modelops_contracts.artifacts import TEXT_PATTERN
from modelops_shared.bus import Bus, enqueue
from pydantic import BaseModel, ConfigDict, Field

from ..access.domain import Role, check_owner
from ..datasets.store import latest_announced
from ..registry_lookups import RegistryLookups
from ..settings import GatewaySettings
from ..usage import store as usage_store
from ..usage.domain import check_budget_left, training_tokens
from .domain import CANCEL_REQUESTED, JobFinished, JobNotFound, check_budget
from .references import Fields, resolve
from .store import Job, insert_job, lock_job, new_job_id, record_event

TRAINING = "training"
# Safe inside `ft:<base>:<suffix>:<job id>`: no `:`.
SUFFIX_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
NATIVE_FIELDS = Fields()


def _one_budget(schema: dict[str, Any]) -> None:
    """The field's schema as all of Hyperparameters and one of the two budgets (`allOf`, which every reader of the
    document resolves, where a sibling of `$ref` may be ignored)."""
    budgets = [
        {"required": [member], "properties": {member: {"type": kind}, other: {"type": "null"}}}
        for member, kind, other in (("max_steps", "integer", "epochs"), ("epochs", "number", "max_steps"))
    ]
    schema["allOf"] = [{"$ref": schema.pop("$ref")}, {"oneOf": budgets}]


class TrainingJobRequest(BaseModel):
    """A fine-tuning job: which base model, which dataset version, and how to train."""

    model_config = ConfigDict(extra="forbid")

    base_model: str = Field(
        min_length=1, max_length=200, pattern=TEXT_PATTERN, description="A base_model artifact id, or a name (latest)"
    )
    dataset: str = Field(min_length=1, max_length=200, pattern=TEXT_PATTERN, description="A registered dataset's name")
    dataset_version: int | None = Field(None, ge=0, description="Default: the latest registered version")
    method: Literal["sft", "dpo", "snn_router"] = Field(
        "sft", description="snn_router trains a spiking router: `base_model` names an embedding_model, rows are routing"
    )
    adapter: AdapterSpec = AdapterSpec()
    quantization: Literal["none", "nf4"] = "none"
    # The schema says what Hyperparameters checks (one budget: max_steps or epochs), so that a client, or a fuzzer,
    # can tell a valid request from the document alone; the event's own schema is left as it was published.
    hyperparameters: Annotated[
        Hyperparameters,
        Field(json_schema_extra=_one_budget),
    ]
    eval_split: float = Field(0.1, ge=0.0, lt=1.0, description="Share of rows held out for evaluation")
    plugins: PluginSpec | None = None
    suffix: str | None = Field(None, pattern=SUFFIX_PATTERN, description="Goes into the fine-tuned model's name")
    router: RouterSpec | None = Field(None, description="snn_router: the network (defaults when absent)")
    resources: Resources = Field(
        Resources(), description="Processes that train the job together (data parallel); default one"
    )


@dataclass(frozen=True)
class Submission:
    """A checked job, ready to record: its command names the exact base model artifact and dataset version."""

    command: StartTraining
    base_model_name: str
    dataset_id: str
    estimated_cost: float


async def check_submission(
    pool: asyncpg.Pool,
    lookups: RegistryLookups,
    request: TrainingJobRequest,
    *,
    token_cost: usage_store.TrainingTokenCost,
    submitted_by: str,
    fields: Fields = NATIVE_FIELDS,
    settings: GatewaySettings,
) -> Submission:
    """Check the request's size against the platform's policy and what it names, through the registry, with no
    transaction open, and estimate its cost (record_submission holds it against the submitter's budget); the
    command names the exact base model artifact and dataset version, whatever the request named."""
    check_budget(
        request.hyperparameters,
        request.resources,
        max_steps=settings.gateway_max_training_steps,
        max_epochs=settings.gateway_max_training_epochs,
        max_ranks=settings.gateway_max_training_ranks,
        param=fields.hyperparameters,
    )
    found = await resolve(
        lookups,
        lambda name: latest_announced(pool, name),
        base_model=request.base_model,
        dataset=request.dataset,
        dataset_version=request.dataset_version,
        method=request.method,
        fields=fields,
        wait_s=settings.gateway_registry_wait_s,
    )
    base, dataset = found.base_model, found.dataset
    command = StartTraining(
        job_id=new_job_id(),
        submitted_by=submitted_by,
        base_model=base["id"],
        dataset=dataset["name"],
        dataset_version=int(dataset["version"]),
        method=request.method,
        adapter=request.adapter,
        quantization=request.quantization,
        hyperparameters=request.hyperparameters,
        eval_split=request.eval_split,
        suffix=request.suffix,
        plugins=request.plugins,
        router=request.router,
        resources=request.resources,
    )
    rows = int((dataset.get("metadata") or {}).get("num_rows", 0))
    tokens = training_tokens(request.hyperparameters, request.resources, rows)
    measured = await token_cost()
    per_token = settings.gateway_default_cost_per_million_training_tokens / 1e6 if measured is None else measured
    return Submission(
        command, base_model_name=base["name"], dataset_id=dataset["id"], estimated_cost=tokens * per_token
    )


async def record_submission(
    conn: asyncpg.Connection,
    bus: Bus,
    request: TrainingJobRequest,
    submission: Submission,
    *,
    currency: str,
    deploy_when_completed: bool = False,
) -> Job:
    """Record the job and stage its StartTraining in `conn`'s transaction, once its estimate fits in the submitter's
    budget left (BudgetExceeded otherwise). `deploy_when_completed`: the jobs handler deploys the job's adapter once
    the job succeeds (handlers.py)."""
    owner = submission.command.submitted_by
    budget = await usage_store.lock_budget(conn, owner)
    if budget is not None:
        committed = await usage_store.committed(conn, owner)
        check_budget_left(owner, budget, committed, submission.estimated_cost, currency)
    job = await insert_job(
        conn,
        submission.command,
        kind=TRAINING,
        base_model=request.base_model,
        base_model_name=submission.base_model_name,
        dataset=request.dataset,
        dataset_id=submission.dataset_id,
        deploy_when_completed=deploy_when_completed,
        estimated_cost=submission.estimated_cost,
    )
    await enqueue(conn, bus, submission.command, correlation_id=submission.command.job_id)
    return job


async def cancel(conn: asyncpg.Connection, bus: Bus, job_id: str, *, requested_by: str, role: Role, reason: str) -> Job:
    """Ask the job's worker to stop, as its submitter or an admin: JobNotFound for an unknown job, NotTheOwner for
    someone else's, JobFinished for a finished one. Asking again sends nothing more; the job is cancelled once its
    worker says so (TrainingCancelled)."""
    job = await lock_job(conn, job_id)
    if job is None:
        raise JobNotFound(job_id)
    check_owner(requested_by, role, job.submitted_by, f"job {job_id}")
    if job.finished:
        raise JobFinished(job_id, job.status)
    if job.cancel_requested_at is None:
        now = datetime.now(UTC)
        await record_event(
            conn,
            job_id,
            CANCEL_REQUESTED,
            {"requested_by": requested_by, "reason": reason},
            at=now,
            changes={"cancel_requested_at": now, "cancel_requested_by": requested_by},
        )
        await enqueue(
            conn, bus, CancelTraining(job_id=job_id, requested_by=requested_by, reason=reason), correlation_id=job_id
        )
        job = await lock_job(conn, job_id)
        assert job is not None
    return job
