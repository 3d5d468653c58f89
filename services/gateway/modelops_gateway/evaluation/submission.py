"""Submitting and cancelling evaluation jobs. What a job names is checked first: the model and adapter through the
registry (registered, not revoked, the adapter trained on that model), or the deployment through the inference
service (ready, and serving the adapter named); and the suite's exact dataset version. The job's row and its
StartEvaluation then commit in one transaction, and a cancel records the request with its CancelEvaluation the
same way.

Produces: evaluation.commands.v1 (StartEvaluation, CancelEvaluation)."""

from __future__ import annotations

from typing import Annotated, Any

import asyncpg
from modelops_contracts import ArtifactKind, CancelEvaluation, MetricSpec, StartEvaluation
from modelops_contracts.artifacts import TEXT_PATTERN
from modelops_contracts.deployments import DEPLOYMENT_NAME
from modelops_contracts.evaluation import METRIC_NAME_PATTERN
from modelops_shared.bus import Bus, enqueue
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..access.domain import Role
from ..datasets.store import latest_announced
from ..deployments.domain import DeploymentNotFound
from ..jobs.domain import UnusableReference
from ..jobs.references import Fields, adapter_of, registered_dataset_version, usable
from ..registry_lookups import RegistryLookups
from ..upstream import Upstream
from .store import JOBS, insert_job, new_job_id

SUITE_FIELDS = Fields(dataset="suite", dataset_version="suite_version")
# A GGUF is evaluated through a deployment that serves it (llama.cpp); the evaluator runs the others itself.
LOCAL_MODEL_KINDS = (ArtifactKind.MERGED_MODEL,)
_SERVED_KINDS = (ArtifactKind.MERGED_MODEL, ArtifactKind.QUANTIZED_MODEL)

Reference = Annotated[str, Field(min_length=1, max_length=200, pattern=TEXT_PATTERN)]
MetricName = Annotated[str, Field(pattern=METRIC_NAME_PATTERN)]


class EvaluationJobRequest(BaseModel):
    """Score a model (with an adapter or not), or a deployment, on one version of a dataset."""

    model_config = ConfigDict(extra="forbid")

    model: Reference | None = Field(
        None, description="A base_model or merged_model artifact (id, or name: its latest); or set `deployment`"
    )
    adapter: Reference | None = Field(
        None, description="An adapter of that model; with `deployment`, one of the adapters it serves"
    )
    deployment: str | None = Field(
        None, pattern=DEPLOYMENT_NAME, description="Evaluate through this deployment's OpenAI API instead"
    )
    suite: Reference = Field(description="The dataset (sft or chat rows) whose rows are the items")
    suite_version: int | None = Field(None, ge=0, le=2**31 - 1, description="Its version; default the latest")
    metrics: list[MetricName | MetricSpec] = Field(
        min_length=1,
        max_length=16,
        description="Names (exact_match, normalized_match, regex_match, json_valid, rouge_l, perplexity, or a"
        ' plugin\'s), or {"name", "params"} objects, e.g. {"name": "regex_match", "params": {"pattern": "^\\\\d+$"}}',
    )
    seed: int = Field(0, ge=0, le=2**31 - 1, description="Picks the sample when max_items is set; seeds decoding")
    max_items: int | None = Field(None, ge=1, le=100_000, description="Score a seeded sample of this many items")
    max_new_tokens: int = Field(128, ge=1, le=4096, description="Longest answer per item")
    name: str | None = Field(None, min_length=1, max_length=120, pattern=TEXT_PATTERN, description="The report's name")

    @model_validator(mode="after")
    def _one_subject_and_each_metric_once(self) -> EvaluationJobRequest:
        if (self.model is None) == (self.deployment is None):
            raise ValueError("name either a model or a deployment")
        names = [spec.name for spec in self.metric_specs]
        if len(set(names)) != len(names):
            raise ValueError("a metric is named twice")
        return self

    @property
    def metric_specs(self) -> list[MetricSpec]:
        return [MetricSpec(name=m) if isinstance(m, str) else m for m in self.metrics]


async def check_submission(
    pool: asyncpg.Pool,
    lookups: RegistryLookups,
    inference: Upstream,
    request: EvaluationJobRequest,
    *,
    submitted_by: str,
    wait_s: float,
) -> StartEvaluation:
    """The command naming the exact artifacts, deployment and suite version; a problem for anything the job could
    not run with."""
    if request.deployment is not None:
        model, adapter, served_model = await _deployed(lookups, inference, request.deployment, request.adapter)
    else:
        assert request.model is not None  # the request's validator: a model or a deployment
        found = await lookups.resolve(ArtifactKind.BASE_MODEL, request.model, "model", also=LOCAL_MODEL_KINDS)
        model = usable(found, "model")
        adapter = await adapter_of(lookups, request.adapter, model) if request.adapter else None
        served_model = None
    suite = await registered_dataset_version(
        lookups,
        lambda name: latest_announced(pool, name),
        request.suite,
        request.suite_version,
        "evaluation",
        SUITE_FIELDS,
        wait_s,
    )
    return StartEvaluation(
        job_id=new_job_id(),
        submitted_by=submitted_by,
        model=model["id"],
        adapter=adapter["id"] if adapter else None,
        deployment=request.deployment,
        served_model=served_model,
        suite=suite["name"],
        suite_version=int(suite["version"]),
        metrics=request.metric_specs,
        seed=request.seed,
        max_items=request.max_items,
        max_new_tokens=request.max_new_tokens,
        name=request.name,
    )


async def record_submission(conn: asyncpg.Connection, bus: Bus, command: StartEvaluation) -> dict[str, Any]:
    job = await insert_job(conn, command)
    await enqueue(conn, bus, command, correlation_id=command.job_id)
    return job


async def cancel(
    conn: asyncpg.Connection, bus: Bus, job_id: str, *, requested_by: str, role: Role, reason: str
) -> dict[str, Any]:
    """Ask the job's worker to stop, as its submitter or an admin; asking again sends nothing more."""

    def command() -> CancelEvaluation:
        return CancelEvaluation(job_id=job_id, requested_by=requested_by, reason=reason)

    return await JOBS.cancel(conn, bus, job_id, command, requested_by=requested_by, role=role)


async def _deployed(
    lookups: RegistryLookups, inference: Upstream, name: str, adapter_ref: str | None
) -> tuple[dict[str, Any], dict[str, Any] | None, str]:
    """The model and adapter a ready deployment serves, and the OpenAI model name that reaches them: the
    deployment's own name (its first adapter, or its model alone), or `<deployment>/<adapter name>`."""
    response = await inference.request("GET", f"/v1/deployments/{name}")
    if response.status_code == 404:
        raise DeploymentNotFound(name)
    if response.status_code != 200:
        raise inference.failure(response.status_code)
    view = response.json()
    if view["status"] != "ready":
        raise UnusableReference(
            slug="deployment-not-ready", detail=f"deployment: {name} is {view['status']}", param="deployment"
        )
    model = await lookups.resolve(ArtifactKind.BASE_MODEL, view["base_model_id"], "deployment", also=_SERVED_KINDS)
    adapter_ids: list[str] = view.get("adapter_ids") or []
    if adapter_ref is None:
        adapter = await lookups.resolve(ArtifactKind.ADAPTER, adapter_ids[0], "deployment") if adapter_ids else None
        return model, adapter, name
    adapter = await lookups.resolve(ArtifactKind.ADAPTER, adapter_ref, "adapter")
    if adapter["id"] not in adapter_ids:
        raise UnusableReference(
            slug="adapter-not-deployed", detail=f"adapter: {name} does not serve {adapter['id']}", param="adapter"
        )
    return model, adapter, f"{name}/{adapter['name']}"
