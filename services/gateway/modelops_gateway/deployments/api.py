"""Inference routes: deployments (Deploy and Undeploy through the outbox; status read from the inference service)
and the OpenAI-compatible completions, chat completions and models, relayed to the inference service behind the
gateway's keys, roles and rate limits. A streamed completion (`stream: true`) passes through as its SSE bytes arrive.

Produces: deployments.commands.v1 (Deploy, Undeploy)."""

from __future__ import annotations

from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse
from modelops_contracts import Deploy
from modelops_contracts.deployments import DEPLOYMENT_NAME
from modelops_contracts.openai_requests import ChatCompletionRequest, CompletionRequest
from modelops_shared.openai_errors import OpenAIErrorRoute
from modelops_shared.problems import Problem

from ..access.domain import check_owner
from ..deps import Gateway, GatewayDep, InferenceDep
from ..routers import api as routed
from ..web.auth import Caller, Developer, Viewer
from ..web.idempotency import Idempotent
from ..web.openapi import problems
from ..web.relay import forwarded, streamed
from . import store
from .domain import DeploymentNotFound
from .references import deployable
from .schemas import DeploymentAccepted, DeploymentRemoval, DeploymentView, DeployRequest

JSON_BODY_LIMIT = 64 * 1024
COMPLETION_BODY_LIMIT = 4 * 1024 * 1024

_COMPLETION_CONTENT = {"content": {"application/json": {}, "text/event-stream": {}}, "description": "The completion"}

DeploymentName = Annotated[str, PathParam(pattern=DEPLOYMENT_NAME)]

router = APIRouter(prefix="/v1/deployments", tags=["deployments"], responses=problems(401, 403, 429))
# OpenAI's routes answer errors with OpenAI's `error` member too, so the `openai` client shows them.
openai = APIRouter(
    prefix="/v1", tags=["inference"], route_class=OpenAIErrorRoute, responses=problems(401, 403, 429, 502, 503)
)


@router.post(
    "",
    status_code=202,
    response_model=DeploymentAccepted,
    max_body_size=JSON_BODY_LIMIT,
    responses=problems(404, 409, 413, 422, 502, 503),
)
async def deploy(body: DeployRequest, caller: Developer, gateway: GatewayDep, idempotency: Idempotent) -> Response:
    """Serve a base model with adapters under `name` (developer), or a router in front of the deployments (and RAG
    collections) its `routes` name. Each is resolved to one registered artifact now (an
    id, or a name's latest), must be in a stage the registry's policy deploys (409 `artifact-not-deployable`) and,
    for an adapter, trained on that base; the command names those ids. The inference service fetches and verifies
    them, then loads them: follow `GET /v1/deployments/{name}` from `queued` to `ready` or `failed`. Deploying a name
    again replaces that deployment: the name's owner's, or an admin's, to do."""

    routes = {label: target.model_dump(mode="json") for label, target in body.routes.items()} or None

    async def resolve(_: str) -> Deploy:
        serves = await deployable(gateway.lookups, body.base_model, body.adapters, routes)
        return Deploy(
            name=body.name,
            base_model=serves.base_model["id"],
            adapters=[adapter["id"] for adapter in serves.adapters],
            requested_by=caller.name,
        )

    async def stage(conn: asyncpg.Connection, command: Deploy) -> Response:
        return await staged(conn, gateway, caller, command, routes)

    return (await idempotency.run_prepared(body.model_dump(mode="json"), resolve, stage)).response


async def staged(
    conn: asyncpg.Connection, gateway: Gateway, caller: Caller, command: Deploy, routes: dict[str, Any] | None = None
) -> Response:
    """Stage `command` as the caller's deployment of its name (replacing one is its owner's or an admin's to do), and
    the 202 that says so; the marketplace's installs deploy through it too."""
    owner = await store.owner(conn, command.name)
    if owner is not None:
        check_owner(caller.name, caller.role, owner, f"deployment {command.name}")
    await store.stage_deploy(conn, gateway.runtime.bus, command, routes=routes)
    accepted = DeploymentAccepted(name=command.name, status="queued")
    return JSONResponse(accepted.model_dump(), 202, headers={"Location": f"/v1/deployments/{command.name}"})


@router.get("", response_model=list[DeploymentView], responses=problems(502, 503))
async def list_deployments(_: Viewer, gateway: GatewayDep, inference: InferenceDep) -> list[DeploymentView]:
    """Every deployment: what the inference service serves, and what was accepted here that it has not yet."""
    served = await inference.json_of("/v1/deployments")
    rows = {row["name"]: row for row in await store.active_deployments(gateway.runtime.pool)}
    views = [DeploymentView.served(view, rows.get(view["name"])) for view in served]
    known = {view.name for view in views}
    views += [DeploymentView.queued(row) for name, row in sorted(rows.items()) if name not in known]
    return sorted(views, key=lambda view: view.name)


@router.get("/{name}", response_model=DeploymentView, responses=problems(404, 422, 502, 503))
async def get_deployment(
    _: Viewer, gateway: GatewayDep, inference: InferenceDep, name: DeploymentName
) -> DeploymentView:
    """One deployment's status: queued, loading, ready, or failed with the reason."""
    row = await store.active_deployment(gateway.runtime.pool, name)
    upstream = await inference.request("GET", f"/v1/deployments/{name}")
    if upstream.status_code == 404:
        if row is None:
            raise DeploymentNotFound(name)
        return DeploymentView.queued(row)
    if upstream.status_code != 200:
        raise inference.failure(upstream.status_code)
    return DeploymentView.served(upstream.json(), row)


@router.delete("/{name}", status_code=202, response_model=DeploymentRemoval, responses=problems(404, 422))
async def undeploy(caller: Developer, gateway: GatewayDep, inference: InferenceDep, name: DeploymentName) -> Response:
    """Stop serving `name` (its owner, or an admin): its running requests end and its models disappear."""
    async with gateway.runtime.pool.acquire() as conn, conn.transaction():
        owner = await store.owner(conn, name)
        if owner is not None:
            check_owner(caller.name, caller.role, owner, f"deployment {name}")
            await store.mark_removed(conn, name, removed_by=caller.name)
            await store.stage_undeploy(conn, gateway.runtime.bus, name, requested_by=caller.name)
    if owner is None:
        # Deployed some other way (or before this gateway kept a record): if the inference service knows it (asked
        # with no transaction open), an admin's to remove.
        upstream = await inference.request("GET", f"/v1/deployments/{name}")
        if upstream.status_code != 200:
            raise DeploymentNotFound(name)
        check_owner(caller.name, caller.role, None, f"deployment {name}")
        async with gateway.runtime.pool.acquire() as conn, conn.transaction():
            await store.stage_undeploy(conn, gateway.runtime.bus, name, requested_by=caller.name)
    return JSONResponse(DeploymentRemoval(name=name, status="removing").model_dump(), 202)


@openai.post(
    "/chat/completions",
    response_model=None,
    max_body_size=COMPLETION_BODY_LIMIT,
    responses={200: _COMPLETION_CONTENT, **problems(400, 404, 413)},
)
async def chat_completions(
    caller: Viewer, gateway: GatewayDep, inference: InferenceDep, body: ChatCompletionRequest, request: Request
) -> Response:
    """OpenAI chat completions (viewer), checked here, answered by the inference service; `stream: true` streams SSE
    chunks. Addressed to a router, answered by the target it picks (routers/api.py)."""
    raw = await request.body()  # relayed as sent: what the client chose to send beyond the checked members too
    routes = await store.routes_of(gateway.runtime.pool, body.model)
    if routes is not None:
        return await routed.answer(gateway, inference, caller, body, raw, routes)
    return await streamed(inference, "POST", "/v1/chat/completions", content=raw, relay_problems=True)


@openai.post(
    "/completions",
    response_model=None,
    max_body_size=COMPLETION_BODY_LIMIT,
    responses={200: _COMPLETION_CONTENT, **problems(400, 404, 413)},
)
async def completions(
    _: Viewer, gateway: GatewayDep, inference: InferenceDep, body: CompletionRequest, request: Request
) -> Response:
    """OpenAI (legacy) completions (viewer), checked here, answered by the inference service; `stream: true` streams
    SSE. A router answers chat completions only."""
    if await store.routes_of(gateway.runtime.pool, body.model) is not None:
        detail = f"{body.model} is a router: it routes chat completions (/v1/chat/completions)"
        raise Problem(400, "router-chat-only", detail, param="model")
    raw = await request.body()
    return await streamed(inference, "POST", "/v1/completions", content=raw, relay_problems=True)


@openai.get("/models", response_model=None)
async def list_models(_: Viewer, inference: InferenceDep) -> Response:
    """Every model name being served: deployments, `<deployment>/<adapter>`, and `ft:` names of fine-tuned models."""
    return await forwarded(inference, "GET", "/v1/models", relay_problems=True)
