"""HTTP routes of the registry (internal: the gateway exposes them with authentication and roles)."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from modelops_contracts import (
    ArtifactFile,
    ArtifactPage,
    ArtifactView,
    LineageGraph,
    PromotionRecord,
    SigningKey,
    Stage,
    StageAt,
)
from modelops_contracts.artifacts import TEXT_PATTERN
from modelops_shared.problems import Problem
from modelops_shared.service import ServiceCallerDep
from modelops_shared.service_tokens import ServiceCaller
from pydantic import BaseModel, Field

from .deps import Registry, RegistryDep
from .domain import ROLES
from .handlers import PromotionError, promote
from .store import queries
from .store.lineage import openlineage_events
from .store.projections import state_digest

router = APIRouter(prefix="/v1")


# The one service that authenticates users, so the one whose token may name the acting user and role.
USER_FACING = "gateway"


class PromotionBody(BaseModel):
    """Who asks is not in the body: it is the acting user of the gateway's service token."""

    to_stage: Stage
    reason: str = Field(min_length=1, max_length=2000)
    request_id: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="Names this request: the same request_id again returns the promotion it made",
    )


def _acting_user(caller: ServiceCaller) -> tuple[str, str]:
    if caller.service != USER_FACING or caller.role not in ROLES:
        raise Problem(403, "acting-user-required", f"a promotion needs a user, vouched for by the {USER_FACING}")
    return caller.subject, caller.role


async def _artifact_or_404(registry: Registry, artifact_id: str) -> dict[str, Any]:
    artifact = await queries.get_artifact(registry.runtime.pool, artifact_id)
    if artifact is None:
        pending = await queries.submission(registry.runtime.pool, artifact_id)
        if pending is not None and pending["status"] == "registered":
            # Registered between the two reads: the artifact is there now.
            artifact = await queries.get_artifact(registry.runtime.pool, artifact_id)
        if artifact is not None:
            return artifact
        if pending is not None:
            raise Problem(
                404,
                "artifact-not-registered",
                f"artifact {artifact_id} is {pending['status']}",
                submission_status=pending["status"],
                reason=pending["reason"],
            )
        raise Problem(404, "artifact-not-found", f"no artifact {artifact_id}")
    return artifact


@router.get("/artifacts", response_model=ArtifactPage)
async def list_artifacts(
    registry: RegistryDep,
    kind: Annotated[str | None, Query(max_length=100, pattern=TEXT_PATTERN)] = None,
    stage: Stage | None = None,
    name: Annotated[str | None, Query(max_length=200, pattern=TEXT_PATTERN)] = None,
    cursor: Annotated[str | None, Query(max_length=200, pattern=TEXT_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> ArtifactPage:
    rows = await queries.list_artifacts(
        registry.runtime.pool,
        kind=kind,
        stage=stage.value if stage else None,
        name=name,
        after=cursor,
        limit=limit + 1,
    )
    next_cursor = rows[limit - 1]["id"] if len(rows) > limit else None
    return ArtifactPage.model_validate({"data": rows[:limit], "next_cursor": next_cursor})


@router.get("/artifacts/{artifact_id}", response_model=ArtifactView)
async def get_artifact(registry: RegistryDep, artifact_id: str) -> dict[str, Any]:
    return await _artifact_or_404(registry, artifact_id)


@router.get("/artifacts/{artifact_id}/files", response_model=list[ArtifactFile])
async def list_files(registry: RegistryDep, artifact_id: str) -> list[dict[str, Any]]:
    await _artifact_or_404(registry, artifact_id)
    return await queries.files(registry.runtime.pool, artifact_id)


@router.get("/artifacts/{artifact_id}/files/{path:path}", response_class=StreamingResponse)
async def download_file(registry: RegistryDep, artifact_id: str, path: str) -> StreamingResponse:
    artifact = await _artifact_or_404(registry, artifact_id)
    listed = {f["path"]: f for f in await queries.files(registry.runtime.pool, artifact_id)}
    if path not in listed:
        raise Problem(404, "file-not-found", f"{artifact_id} has no file {path}")
    store = registry.runtime.store
    key = f"{store.key_of(artifact['uri'])}/{path}"
    chunks = store.stream(key)
    return StreamingResponse(
        chunks,
        media_type="application/octet-stream",
        headers={"Content-Length": str(listed[path]["size"]), "Digest": f"sha-256={listed[path]['sha256']}"},
    )


@router.get("/artifacts/{artifact_id}/bundle")
async def get_bundle(registry: RegistryDep, artifact_id: str) -> Any:
    artifact = await _artifact_or_404(registry, artifact_id)
    bundle = await queries.bundle(registry.runtime.pool, artifact_id)
    if bundle is None:
        raise Problem(404, "bundle-not-found", f"{artifact['kind']} {artifact_id} is recorded, not signed")
    return bundle


@router.get("/artifacts/{artifact_id}/lineage", response_model=LineageGraph | list[dict[str, Any]])
async def get_lineage(
    registry: RegistryDep, artifact_id: str, format: Literal["graph", "openlineage"] = "graph"
) -> Any:
    await _artifact_or_404(registry, artifact_id)
    pool = registry.runtime.pool
    graph = await queries.lineage(pool, artifact_id)
    if format == "openlineage":
        return await openlineage_events(pool, graph)
    return {"artifact_id": artifact_id, **graph}


@router.post("/artifacts/{artifact_id}/promotions", status_code=201, max_body_size=64 * 1024)
async def create_promotion(
    registry: RegistryDep,
    caller: ServiceCallerDep,
    artifact_id: str,
    body: PromotionBody,
) -> dict[str, Any]:
    actor, actor_role = _acting_user(caller)
    async with registry.runtime.pool.acquire() as conn, conn.transaction():
        try:
            event = await promote(
                conn,
                registry.runtime.bus,
                registry.keys,
                registry.policy,
                artifact_id,
                to_stage=body.to_stage,
                actor=actor,
                actor_role=actor_role,
                reason=body.reason,
                request_id=body.request_id,
            )
        except PromotionError as error:
            if error.missing:
                raise Problem(404, "artifact-not-found", str(error)) from None
            raise Problem(409, "policy-violation", str(error)) from None
    return event.model_dump(mode="json")


@router.get("/artifacts/{artifact_id}/promotions", response_model=list[PromotionRecord])
async def list_promotions(registry: RegistryDep, artifact_id: str) -> list[dict[str, Any]]:
    await _artifact_or_404(registry, artifact_id)
    return await queries.promotions(registry.runtime.pool, artifact_id)


@router.get("/artifacts/{artifact_id}/stage", response_model=StageAt)
async def get_stage_at(registry: RegistryDep, artifact_id: str, at: datetime) -> dict[str, Any]:
    """The artifact's stage at time `at` (ISO 8601 with a timezone)."""
    await _artifact_or_404(registry, artifact_id)
    stage = await queries.stage_at(registry.runtime.pool, artifact_id, at)
    if stage is None:
        raise Problem(404, "not-yet-registered", f"{artifact_id} was not registered at {at.isoformat()}")
    return {"artifact_id": artifact_id, "at": at, "stage": stage}


@router.get("/stages/{stage}/artifacts", response_model=list[ArtifactView])
async def get_artifacts_in_stage_at(registry: RegistryDep, stage: Stage, at: datetime) -> list[dict[str, Any]]:
    """Every artifact that was in `stage` at time `at` — e.g. what was in prod at T."""
    return await queries.in_stage_at(registry.runtime.pool, stage.value, at)


@router.get("/jobs/{job_id}")
async def get_job(registry: RegistryDep, job_id: str) -> dict[str, Any]:
    job = await queries.job(registry.runtime.pool, job_id)
    if job is None:
        raise Problem(404, "job-not-found", f"no job {job_id}")
    return job


@router.get("/jobs/{job_id}/events")
async def get_job_events(registry: RegistryDep, job_id: str) -> list[dict[str, Any]]:
    events = await queries.job_events(registry.runtime.pool, job_id)
    if not events:
        raise Problem(404, "job-not-found", f"no events for job {job_id}")
    return [{"seq": e["seq"], **json.loads(e["event"])} for e in events]


@router.get("/deployments")
async def list_deployments(registry: RegistryDep, wanted: bool = False) -> list[dict[str, Any]]:
    """Deployments as projected from their commands and events; `wanted=true` leaves out undeployed ones (a restarting
    inference replica re-deploys those)."""
    return await queries.deployments(registry.runtime.pool, wanted=wanted)


@router.get("/policy")
async def get_policy(registry: RegistryDep) -> dict[str, Any]:
    """The governance policy in force: who may promote to each stage under which thresholds, and what may be
    deployed."""
    policy = registry.policy
    return {
        "stages": {
            stage.value: {
                "roles": sorted(rule.roles),
                "metrics": {metric: f"{op} {bound:g}" for metric, (op, bound) in rule.thresholds.items()},
                "metrics_apply_to": sorted(rule.threshold_kinds),
                "metrics_of": {
                    kind: {metric: f"{op} {bound:g}" for metric, (op, bound) in thresholds.items()}
                    for kind, thresholds in rule.kind_thresholds.items()
                },
                "evaluations": [
                    {
                        "suite": evaluation.suite,
                        "kinds": sorted(evaluation.kinds),
                        "metrics": {metric: f"{op} {bound:g}" for metric, (op, bound) in evaluation.thresholds.items()},
                        "max_regression": dict(evaluation.max_regression),
                    }
                    for evaluation in rule.evaluations
                ],
                "distinct_approver": rule.distinct_approver,
            }
            for stage, rule in policy.rules.items()
        },
        "deploy": {
            "stages": sorted(stage.value for stage in policy.deploy.stages),
            "fine_tuning_jobs": policy.deploy.fine_tuning_jobs,
        },
    }


@router.get("/keys", response_model=list[SigningKey])
async def list_keys(registry: RegistryDep) -> list[dict[str, Any]]:
    """Every public key the registry has signed with (PEM); the active one signs new artifacts."""
    return [asdict(key) for key in registry.keys.public_keys()]


@router.get("/state-digest")
async def get_state_digest(registry: RegistryDep) -> dict[str, Any]:
    async with registry.runtime.pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        head = await conn.fetchrow("SELECT seq, hash FROM event_log_head")
        digest = await state_digest(conn)
    return {"state_digest": digest, "log_seq": head["seq"], "log_head": head["hash"]}
