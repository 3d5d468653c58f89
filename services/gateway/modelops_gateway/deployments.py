"""Inference routes: deployments (Deploy and Undeploy through the outbox; status read from the inference service)
and the OpenAI-compatible completions, chat completions and models, proxied to the inference service behind the
gateway's keys, roles and rate limits. A streamed completion (`stream: true`) passes through as its SSE bytes arrive.

Produces: deployments.commands.v1 (Deploy, Undeploy)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any, Literal

import asyncpg
import httpx
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, StreamingResponse
from modelops_contracts import Deploy, Undeploy
from modelops_contracts.deployments import DEPLOYMENT_NAME
from modelops_shared.bus import enqueue
from modelops_shared.problems import Problem
from modelops_shared.service import REQUEST_ID
from modelops_shared.telemetry import current_trace_headers, request_id_var
from pydantic import BaseModel, Field
from starlette.background import BackgroundTask

from .auth import Developer, Viewer
from .context import GatewayDep
from .deployment_records import stage_deploy
from .idempotency import Idempotent
from .openai_errors import OpenAIErrorRoute
from .openapi import problems

JSON_BODY_LIMIT = 64 * 1024
COMPLETION_BODY_LIMIT = 4 * 1024 * 1024
RETRY_AFTER_S = 5
# Headers of an inference answer that still describe it once relayed (httpx's raw bytes are passed as they are).
_RELAYED_HEADERS = ("content-type", "content-encoding", "retry-after", "cache-control", "x-accel-buffering")

_COMPLETION_CONTENT = {"content": {"application/json": {}, "text/event-stream": {}}, "description": "The completion"}

DeploymentName = Annotated[str, PathParam(pattern=DEPLOYMENT_NAME)]
Status = Literal["queued", "loading", "ready", "failed"]


@asynccontextmanager
async def _inference_client(app: FastAPI) -> AsyncIterator[None]:
    """The HTTP client of the inference service, for as long as the app runs (entered after the gateway's own)."""
    settings = app.state.gateway.settings
    timeout = httpx.Timeout(settings.inference_timeout_s, connect=5.0)
    async with httpx.AsyncClient(base_url=settings.inference_url.rstrip("/"), timeout=timeout) as client:
        app.state.inference_client = client
        yield


router = APIRouter(
    prefix="/v1/deployments",
    tags=["deployments"],
    responses=problems(401, 403, 429),
    lifespan=_inference_client,
)
# OpenAI's routes answer errors with OpenAI's `error` member too, so the `openai` client shows them.
openai = APIRouter(
    prefix="/v1", tags=["inference"], route_class=OpenAIErrorRoute, responses=problems(401, 403, 429, 502, 503)
)


class DeployRequest(BaseModel):
    name: str = Field(pattern=DEPLOYMENT_NAME, description="The deployment's name: the model name clients send")
    base_model: str = Field(min_length=1, max_length=200, description="The base model's artifact id")
    adapters: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        default_factory=list, max_length=64, description="Adapter artifact ids; none serves the base model alone"
    )


class DeploymentAccepted(BaseModel):
    name: str
    status: Literal["queued"]


class DeploymentRemoval(BaseModel):
    name: str
    status: Literal["removing"]


class DeploymentView(BaseModel):
    """A deployment as the inference service serves it, or `queued` while it has not picked the Deploy up."""

    name: str
    status: Status
    reason: str | None = Field(None, description="Why it failed")
    base_model: str
    base_model_id: str | None = None
    adapters: list[str]
    adapter_ids: list[str] = []
    models: list[str] = Field(default_factory=list, description="The model names it answers to")
    requested_by: str | None = Field(None, description="Who deployed it through this gateway")
    requested_at: datetime | None = None


@router.post(
    "",
    status_code=202,
    response_model=DeploymentAccepted,
    max_body_size=JSON_BODY_LIMIT,
    responses=problems(413, 422),
)
async def deploy(body: DeployRequest, caller: Developer, gateway: GatewayDep, idempotency: Idempotent) -> Response:
    """Serve a base model with adapters under `name` (developer). The inference service fetches and verifies the
    artifacts, then loads them: follow `GET /v1/deployments/{name}` from `queued` to `ready` or `failed`.
    Deploying a name again replaces that deployment."""
    command = Deploy(name=body.name, base_model=body.base_model, adapters=body.adapters, requested_by=caller.name)

    async def stage(conn: asyncpg.Connection) -> Response:
        await stage_deploy(conn, gateway.runtime.bus, command)
        accepted = DeploymentAccepted(name=body.name, status="queued")
        return JSONResponse(accepted.model_dump(), 202, headers={"Location": f"/v1/deployments/{body.name}"})

    return (await idempotency.run(body.model_dump(mode="json"), stage)).response


@router.get("", response_model=list[DeploymentView], responses=problems(502, 503))
async def list_deployments(_: Viewer, gateway: GatewayDep, request: Request) -> list[DeploymentView]:
    """Every deployment: what the inference service serves, and what was accepted here that it has not yet."""
    served = await _inference_json(request, "/v1/deployments")
    rows = {row["name"]: row for row in await gateway.runtime.pool.fetch(_ACTIVE_SQL)}
    views = [_served(view, rows.get(view["name"])) for view in served]
    known = {view.name for view in views}
    views += [_queued(row) for name, row in sorted(rows.items()) if name not in known]
    return sorted(views, key=lambda view: view.name)


@router.get("/{name}", response_model=DeploymentView, responses=problems(404, 422, 502, 503))
async def get_deployment(_: Viewer, gateway: GatewayDep, request: Request, name: DeploymentName) -> DeploymentView:
    """One deployment's status: queued, loading, ready, or failed with the reason."""
    row = await gateway.runtime.pool.fetchrow(f"{_ACTIVE_SQL} AND name = $1", name)
    upstream = await _inference(request).get(f"/v1/deployments/{name}", headers=_context_headers())
    if upstream.status_code == 404:
        if row is None:
            raise Problem(404, "deployment-not-found", f"no deployment {name}")
        return _queued(row)
    _raise_for_server_error(upstream)
    if upstream.status_code != 200:
        raise Problem(502, "inference-error", f"the inference service answered {upstream.status_code}")
    return _served(upstream.json(), row)


@router.delete("/{name}", status_code=202, response_model=DeploymentRemoval, responses=problems(404, 422))
async def undeploy(caller: Developer, gateway: GatewayDep, request: Request, name: DeploymentName) -> Response:
    """Stop serving `name` (developer): its running requests end and its models disappear."""
    async with gateway.runtime.pool.acquire() as conn, conn.transaction():
        removed = await conn.fetchval(
            "UPDATE deployments SET removed_at = now(), removed_by = $2"
            " WHERE name = $1 AND removed_at IS NULL RETURNING true",
            name,
            caller.name,
        )
        if not removed:
            # Deployed some other way (or before this gateway kept a record): the inference service still knows it.
            upstream = await _inference(request).get(f"/v1/deployments/{name}", headers=_context_headers())
            _raise_for_server_error(upstream)
            if upstream.status_code != 200:
                raise Problem(404, "deployment-not-found", f"no deployment {name}")
        await enqueue(conn, gateway.runtime.bus, Undeploy(name=name, requested_by=caller.name), correlation_id=name)
    return JSONResponse(DeploymentRemoval(name=name, status="removing").model_dump(), 202)


_ACTIVE_SQL = "SELECT name, base_model, adapters, requested_by, requested_at FROM deployments WHERE removed_at IS NULL"


def _queued(row: asyncpg.Record) -> DeploymentView:
    return DeploymentView(
        name=row["name"],
        status="queued",
        base_model=row["base_model"],
        adapters=list(row["adapters"]),
        requested_by=row["requested_by"],
        requested_at=row["requested_at"],
    )


def _served(view: dict[str, Any], row: asyncpg.Record | None) -> DeploymentView:
    extra = {"requested_by": row["requested_by"], "requested_at": row["requested_at"]} if row else {}
    return DeploymentView.model_validate({**view, **extra})


@openai.post(
    "/chat/completions",
    response_model=None,
    responses={200: _COMPLETION_CONTENT, **problems(400, 404, 413)},
)
async def chat_completions(_: Viewer, request: Request) -> Response:
    """OpenAI chat completions (viewer), answered by the inference service; `stream: true` streams SSE chunks."""
    return await _relay(request, "/v1/chat/completions")


@openai.post(
    "/completions",
    response_model=None,
    responses={200: _COMPLETION_CONTENT, **problems(400, 404, 413)},
)
async def completions(_: Viewer, request: Request) -> Response:
    """OpenAI (legacy) completions (viewer), answered by the inference service; `stream: true` streams SSE."""
    return await _relay(request, "/v1/completions")


@openai.get("/models", response_model=None)
async def list_models(_: Viewer, request: Request) -> Response:
    """Every model name being served: deployments, `<deployment>/<adapter>`, and `ft:` names of fine-tuned models."""
    upstream = await _send(request, "GET", "/v1/models", stream=False)
    return Response(upstream.content, upstream.status_code, headers=_kept(upstream.headers))


async def _relay(request: Request, path: str) -> Response:
    """The request body sent on as it is (the inference service validates it), and its answer streamed back."""
    body = await request.body()
    if len(body) > COMPLETION_BODY_LIMIT:
        raise Problem(413, "body-too-large", f"a completion request may be at most {COMPLETION_BODY_LIMIT} bytes")
    try:
        json.loads(body)
    except ValueError:
        raise Problem(400, "invalid-json", "the request body must be JSON") from None
    upstream = await _send(request, "POST", path, stream=True, content=body)
    return StreamingResponse(
        upstream.aiter_raw(),
        upstream.status_code,
        headers=_kept(upstream.headers),
        background=BackgroundTask(upstream.aclose),
    )


async def _send(
    request: Request, method: str, path: str, *, stream: bool, content: bytes | None = None
) -> httpx.Response:
    client = _inference(request)
    headers = {**_context_headers(), **({"Content-Type": "application/json"} if content is not None else {})}
    outgoing = client.build_request(method, path, content=content, headers=headers)
    try:
        upstream = await client.send(outgoing, stream=stream)
    except httpx.TransportError as error:
        raise _unreachable(error) from None
    if upstream.status_code >= 500 and not _is_problem(upstream):
        # The inference service's own problems (a model loading, a failed generation) pass through; anything else
        # that failed is a bad gateway.
        if stream:
            await upstream.aclose()
        _raise_for_server_error(upstream)
    return upstream


async def _inference_json(request: Request, path: str) -> Any:
    upstream = await _send(request, "GET", path, stream=False)
    _raise_for_server_error(upstream)
    if upstream.status_code != 200:
        raise Problem(502, "inference-error", f"the inference service answered {upstream.status_code}")
    return upstream.json()


def _inference(request: Request) -> httpx.AsyncClient:
    client: httpx.AsyncClient | None = getattr(request.app.state, "inference_client", None)
    if client is None:
        raise Problem(503, "not-ready", "the gateway is starting", retry_after=1)
    return client


def _context_headers() -> dict[str, str]:
    """So the inference service's log lines and spans join the request that caused them."""
    request_id = request_id_var.get()
    return {**current_trace_headers(), **({REQUEST_ID: request_id} if request_id else {})}


def _kept(headers: httpx.Headers) -> dict[str, str]:
    return {name: headers[name] for name in _RELAYED_HEADERS if name in headers}


def _is_problem(upstream: httpx.Response) -> bool:
    return str(upstream.headers.get("content-type", "")).startswith("application/problem+json")


def _unreachable(error: httpx.TransportError) -> Problem:
    if isinstance(error, httpx.ConnectError | httpx.ConnectTimeout):
        return Problem(
            503, "inference-unavailable", "the inference service cannot be reached", retry_after=RETRY_AFTER_S
        )
    return Problem(502, "inference-error", f"the inference service did not answer properly ({type(error).__name__})")


def _raise_for_server_error(upstream: httpx.Response) -> None:
    if upstream.status_code == 503:
        raise Problem(503, "inference-unavailable", "the inference service is not ready", retry_after=RETRY_AFTER_S)
    if upstream.status_code >= 500:
        raise Problem(
            502,
            "inference-error",
            f"the inference service failed ({upstream.status_code})",
            upstream_status=upstream.status_code,
        )
