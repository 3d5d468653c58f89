"""Router routes: a chat completion addressed to a router deployment (the inference service's network picks the
target; the gateway records the decision and asks the target: a deployment, or a RAG collection answered by one, as
the caller), a router's statistics, corrections of its decisions, and the corrections as training rows.

Produces: router.events.v1 (RouteDecided, RouteCorrected), through the outbox."""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Query, Response
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, StreamingResponse
from modelops_contracts import RouteCorrected, RouteDecided, RouteTarget
from modelops_contracts.deployments import DEPLOYMENT_NAME
from modelops_contracts.openai_requests import ChatCompletionRequest
from modelops_contracts.routing import CorrectionRequest, FeedbackRow, RouteDecisionView, RouterStats
from modelops_shared.problems import Problem

from ..access.domain import check_owner
from ..deployments import store as deployments
from ..deps import Gateway, GatewayDep
from ..upstream import Upstream
from ..web.auth import Caller, Developer, Viewer
from ..web.openapi import problems
from ..web.relay import BUFFERED_HEADERS, STREAMED_HEADERS, kept, read_whole, relayed
from . import store

JSON_BODY_LIMIT = 64 * 1024
QUESTION_CHARS = 4000  # what the rag service takes as a question
FEEDBACK_ROWS = 100_000

RouterName = Annotated[str, PathParam(pattern=DEPLOYMENT_NAME)]
DecisionId = Annotated[str, PathParam(pattern=r"^rdec-[0-9a-f]{25}$")]

router = APIRouter(prefix="/v1/routers", tags=["routers"], responses=problems(401, 403, 429))


async def answer(
    gateway: Gateway,
    inference: Upstream,
    caller: Caller,
    body: ChatCompletionRequest,
    raw: bytes,
    routes: dict[str, Any],
) -> Response:
    """Answer a chat completion addressed to a router: decide, record the decision, ask the target. The response
    names the target in `X-ModelOps-Route` headers, and in `usage.route` when it is read whole."""
    prompt = next((m.content for m in reversed(body.messages) if m.role == "user"), body.messages[-1].content)
    decided = await inference.request("POST", f"/v1/routers/{body.model}/decide", json={"prompt": prompt})
    if decided.status_code == 404:
        raise Problem(503, "router-loading", f"router {body.model} is not loaded yet", retry_after=1)
    if decided.status_code != 200:
        raise inference.failure(decided.status_code)
    decision = RouteDecisionView.model_validate(decided.json())
    if decision.label not in routes:
        raise Problem(
            502, "router-target-unknown", f"router {body.model} chose {decision.label!r}, which it has no route for"
        )
    target = RouteTarget.model_validate(routes[decision.label])
    decided_event = RouteDecided(
        decision_id=f"rdec-{time.time_ns() // 1_000_000:011x}{secrets.token_hex(7)}",
        router=body.model,
        router_artifact=decision.router_artifact,
        prompt_sha256=hashlib.sha256(prompt.encode()).hexdigest(),
        label=decision.label,
        target=target,
        margin=decision.margin,
        fallback=decision.fallback,
        requested_by=caller.name,
    )
    async with gateway.runtime.pool.acquire() as conn, conn.transaction():
        await store.stage(conn, gateway.runtime.bus, decided_event)
    route = {"decision_id": decided_event.decision_id, "target": decision.label, **target.model_dump(exclude_none=True)}
    route |= {"margin": decision.margin, "fallback": decision.fallback}
    headers = {
        "X-ModelOps-Route": decision.label,
        "X-ModelOps-Route-Deployment": target.deployment,
        "X-ModelOps-Route-Decision": decided_event.decision_id,
        **({"X-ModelOps-Route-Collection": target.collection} if target.collection else {}),
    }
    if target.collection:
        return await _from_collection(gateway, caller, body, prompt, target, route, headers)
    return await _from_deployment(inference, body, raw, target, route, headers)


async def _from_deployment(
    inference: Upstream,
    body: ChatCompletionRequest,
    raw: bytes,
    target: RouteTarget,
    route: dict[str, Any],
    headers: dict[str, str],
) -> Response:
    request = {**json.loads(raw), "model": target.deployment}
    answer = await inference.send("POST", "/v1/chat/completions", json=request, stream=body.stream, relay_problems=True)
    if body.stream and answer.status_code == 200:
        return StreamingResponse(relayed(answer), 200, headers={**kept(answer.headers, STREAMED_HEADERS), **headers})
    content = await read_whole(answer)
    if answer.status_code != 200:
        return _as_answered(answer, content, headers)
    completion = json.loads(content)
    completion["model"] = body.model
    completion["usage"] = {**(completion.get("usage") or {}), "route": route}
    return JSONResponse(completion, headers=headers)


async def _from_collection(
    gateway: Gateway,
    caller: Caller,
    body: ChatCompletionRequest,
    prompt: str,
    target: RouteTarget,
    route: dict[str, Any],
    headers: dict[str, str],
) -> Response:
    if len(prompt) > QUESTION_CHARS:
        detail = (
            f"the router sent this prompt to collection {target.collection}, which takes {QUESTION_CHARS} characters"
        )
        raise Problem(400, "prompt-too-long", detail, param="messages")
    question = {
        "question": prompt,
        "model": target.deployment,
        "max_tokens": body.max_completion_tokens or body.max_tokens or 256,
        "stream": body.stream,
    }
    path = f"/v1/collections/{target.collection}/answer"
    answer = await gateway.rag.send(
        "POST",
        path,
        json=question,
        stream=body.stream,
        relay_problems=True,
        acting_for=(caller.name, caller.role.value),
    )
    ident, created = f"chatcmpl-{route['decision_id']}", int(time.time())
    if body.stream and answer.status_code == 200:
        chunks = _openai_chunks(answer, ident, created, body.model)
        return StreamingResponse(chunks, 200, media_type="text/event-stream", headers=headers)
    content = await read_whole(answer)
    if answer.status_code != 200:
        return _as_answered(answer, content, headers)
    grounded = json.loads(content)
    usage = grounded.get("usage") or {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    completion = {
        "id": ident,
        "object": "chat.completion",
        "created": created,
        "model": body.model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": grounded["answer"]}, "finish_reason": "stop"}
        ],
        "usage": {**usage, "route": route},
        "citations": grounded.get("citations", []),
    }
    return JSONResponse(completion, headers=headers)


def _as_answered(answer: httpx.Response, content: bytes, headers: dict[str, str]) -> Response:
    """The target's refusal (a problem) as it came, with the route named."""
    return Response(content, answer.status_code, headers={**kept(answer.headers, BUFFERED_HEADERS), **headers})


async def _openai_chunks(answer: httpx.Response, ident: str, created: int, model: str) -> AsyncIterator[str]:
    """The rag service's answer events as OpenAI chat completion chunks: the text's deltas, then a stop."""

    def chunk(delta: dict[str, str], finish: str | None = None) -> str:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        body = {"id": ident, "object": "chat.completion.chunk", "created": created, "model": model, "choices": [choice]}
        return f"data: {json.dumps(body)}\n\n"

    try:
        yield chunk({"role": "assistant"})
        async for line in answer.aiter_lines():
            if not line.startswith("data:"):
                continue
            event = json.loads(line[5:])
            if event["type"] == "citations" and event.get("answer"):
                yield chunk({"content": event["answer"]})  # answered without the model: nothing relevant found
            elif event["type"] == "delta":
                yield chunk({"content": event["text"]})
            elif event["type"] == "error":
                yield f"data: {json.dumps({'error': {'message': event['detail'], 'type': 'server_error'}})}\n\n"
                return
        yield chunk({}, "stop")
        yield "data: [DONE]\n\n"
    finally:
        await answer.aclose()


@router.get("/{name}/stats", response_model=RouterStats, responses=problems(404, 422))
async def stats(_: Viewer, gateway: GatewayDep, name: RouterName) -> RouterStats:
    """How the router decided: requests per target, fallbacks, the mean spike-count margin, corrections."""
    await _routes(gateway, name)
    return RouterStats.model_validate(await store.stats(gateway.runtime.pool, name))


@router.post(
    "/{name}/decisions/{decision_id}/corrections",
    status_code=202,
    response_model=None,
    max_body_size=JSON_BODY_LIMIT,
    responses=problems(404, 409, 422),
)
async def correct(
    body: CorrectionRequest, caller: Developer, gateway: GatewayDep, name: RouterName, decision_id: DecisionId
) -> Response:
    """Mark a decision wrong: `target` should have answered. Its requester (or an admin) sends the prompt as it was
    (its hash must be the decision's); the pair becomes a row of `GET /v1/routers/{name}/feedback`."""
    decided = await store.decision(gateway.runtime.pool, name, decision_id)
    if decided is None or (decided["requested_by"] != caller.name and caller.role.value != "admin"):
        raise Problem(404, "decision-not-found", f"router {name} made no decision {decision_id} for you")
    if hashlib.sha256(body.prompt.encode()).hexdigest() != decided["prompt_sha256"]:
        raise Problem(422, "prompt-mismatch", "this is not the prompt the decision was made on", param="prompt")
    routes = await _routes(gateway, name)
    if body.target not in routes:
        known = sorted(routes)
        raise Problem(422, "unknown-target", f"router {name} routes to {known}, not {body.target!r}", param="target")
    correction = RouteCorrected(
        decision_id=decision_id, router=name, prompt=body.prompt, label=body.target, corrected_by=caller.name
    )
    async with gateway.runtime.pool.acquire() as conn, conn.transaction():
        await store.stage(conn, gateway.runtime.bus, correction)
    return JSONResponse({"decision_id": decision_id, "target": body.target, "status": "recorded"}, 202)


@router.get("/{name}/feedback", response_model=list[FeedbackRow], responses=problems(404, 422))
async def feedback(
    caller: Developer,
    gateway: GatewayDep,
    name: RouterName,
    limit: Annotated[int, Query(ge=1, le=FEEDBACK_ROWS)] = 10_000,
) -> list[FeedbackRow]:
    """The corrections as routing rows (`prompt`, `target`), oldest first: upload them as a routing dataset (with
    the rows the router was trained on) and train the next router on it. The router's owner's, or an admin's."""
    deployment = await deployments.active_deployment(gateway.runtime.pool, name)
    if deployment is None or deployment["routes"] is None:
        raise Problem(404, "router-not-found", f"no router deployment {name}")
    check_owner(caller.name, caller.role, deployment["requested_by"], f"router {name}")
    return [FeedbackRow(**row) for row in await store.feedback_rows(gateway.runtime.pool, name, limit)]


async def _routes(gateway: Gateway, name: str) -> dict[str, Any]:
    routes = await deployments.routes_of(gateway.runtime.pool, name)
    if routes is None:
        raise Problem(404, "router-not-found", f"no router deployment {name}")
    return dict(routes)
