"""HTTP routes: OpenAI-compatible completions (`echo` and `logprobs` for scoring), chat completions (SSE streaming as
OpenAI streams) and models, plus the deployments' status. Errors are problem+json with OpenAI's `error` member
(`OpenAIErrorRoute`), so the openai client reads them. A model on a vLLM or llama.cpp engine is answered by relaying
the OpenAI body to it (`_relay`)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, StreamingResponse
from modelops_contracts.openai_requests import ChatCompletionRequest, CompletionRequest, Sampling
from modelops_contracts.routing import DecideRequest, RouteDecisionView
from modelops_shared.openai_errors import OpenAIErrorRoute, openai_error_of
from modelops_shared.problems import Problem

from . import metrics
from .adapter_slots import AdapterBudgetExceeded
from .batching import QueueFull
from .deployments import Deployments, ProxyEngine
from .deps import InferenceDep
from .generation import Generation, GenerationFailed
from .relay import RelayBusy, RelayError, count_usage
from .sampling import SamplingParams
from .scoring import score
from .settings import InferenceSettings

COMPLETION_BODY_LIMIT = 4 * 1024 * 1024  # the gateway's own limit: a body is refused while it streams past it

router = APIRouter(prefix="/v1", route_class=OpenAIErrorRoute)
routing = APIRouter(prefix="/v1/routers")


@router.get("/models")
async def list_models(inference: InferenceDep) -> dict[str, Any]:
    """Every model name this replica serves (deployments, their adapters, `ft:` names)."""
    owners = {name: route.deployment for name, route in inference.deployments.routes.items()}
    owners |= {name: name for name in inference.deployments.routers.loaded}
    data = [{"id": name, "object": "model", "created": 0, "owned_by": owner} for name, owner in sorted(owners.items())]
    return {"object": "list", "data": data}


@router.get("/deployments")
async def list_deployments(inference: InferenceDep) -> list[dict[str, Any]]:
    return [_view(d) for d in inference.deployments.deployments.values()]


@router.get("/deployments/{name}")
async def get_deployment(inference: InferenceDep, name: str) -> dict[str, Any]:
    deployment = inference.deployments.deployments.get(name)
    if deployment is None:
        raise Problem(404, "deployment-not-found", f"no deployment {name}")
    return _view(deployment)


def _view(deployment: Any) -> dict[str, Any]:
    return {
        "name": deployment.name,
        "status": deployment.status,
        "reason": deployment.reason or None,
        "base_model": deployment.base_model,
        "base_model_id": deployment.base_id,
        "adapters": deployment.adapters,
        "adapter_ids": deployment.adapter_ids,
        "models": deployment.models,
    }


@router.post("/chat/completions", response_model=None, max_body_size=COMPLETION_BODY_LIMIT)
async def chat_completions(body: ChatCompletionRequest, inference: InferenceDep) -> JSONResponse | StreamingResponse:
    """OpenAI chat completions: the prompt is the base model's chat template over `messages`."""
    engine, route = await _engine(inference.deployments, body.model)
    if isinstance(engine, ProxyEngine):
        return await _relay(inference.settings, engine, route, body, chat=True)
    tokenizer = engine.backend.tokenizer

    def tokenized() -> list[int]:
        rendered = tokenizer.apply_chat_template(
            [m.model_dump() for m in body.messages], add_generation_prompt=True, tokenize=False
        )
        # The template writes the special tokens itself.
        return list(tokenizer(str(rendered), add_special_tokens=False)["input_ids"])

    prompt = await asyncio.to_thread(tokenized)  # megabytes of messages take a while: not on the event loop
    max_tokens = body.max_completion_tokens or body.max_tokens
    generation = await _start(inference.settings, engine, route, body, prompt, max_tokens)
    return await _answer(generation, body, chat=True)


@router.post("/completions", response_model=None, max_body_size=COMPLETION_BODY_LIMIT)
async def completions(body: CompletionRequest, inference: InferenceDep) -> JSONResponse | StreamingResponse:
    """OpenAI (legacy) text completions of one prompt."""
    engine, route = await _engine(inference.deployments, body.model)
    prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
    if len(prompts) != 1:
        raise Problem(400, "one-prompt", "send one prompt per request", param="prompt")
    scoring = body.echo or body.logprobs is not None
    if isinstance(engine, ProxyEngine):
        if body.echo and engine.kind != "vllm":
            raise Problem(
                400,
                "echo-not-served",
                f"a {engine.kind} deployment does not return prompt log-probabilities (echo)",
                param="echo",
            )
        return await _relay(inference.settings, engine, route, body, chat=False)
    prompt = (await asyncio.to_thread(engine.backend.tokenizer, prompts[0]))["input_ids"]
    if not prompt:
        # An empty prompt of a tokenizer that adds no BOS leaves the model nothing to continue from.
        raise Problem(400, "empty-prompt", "the prompt has no tokens; send some text", param="prompt")
    if scoring:
        return await _scored(engine, route, body, prompt, prompts[0])
    generation = await _start(inference.settings, engine, route, body, prompt, body.max_tokens)
    return await _answer(generation, body, chat=False)


async def _scored(engine: Any, route: Any, body: CompletionRequest, prompt: list[int], text: str) -> JSONResponse:
    """A scoring request (`echo`, `logprobs`): the prompt's token log-probabilities and the greedy next token, in
    OpenAI's legacy completions shape, as lm-evaluation-harness reads it."""
    if body.stream or (body.max_tokens or 0) > 1 or (body.max_tokens == 1 and body.temperature > 0):
        raise Problem(
            400,
            "logprobs-for-scoring-only",
            "echo and logprobs are answered for scoring: max_tokens 1 at temperature 0 (or none), not streamed",
            param="logprobs",
        )
    if len(prompt) >= engine.backend.max_context:
        raise Problem(400, "context_length_exceeded", f"the prompt is {len(prompt)} tokens", param="prompt")
    backend, labels = engine.backend, (route.deployment, body.model)
    if route.adapter_id and route.adapter_path:
        await backend.acquire_adapter(route.adapter_id, route.adapter_path)
    try:
        scored = await score(
            backend, prompt, route.adapter_id, top=body.logprobs or 0, next_token=bool(body.max_tokens)
        )
    finally:
        if route.adapter_id and route.adapter_path:
            backend.release_adapter(route.adapter_id)
    pieces = [backend.tokenizer.decode([token]) for token in scored.tokens]
    shown = 0 if body.echo else len(prompt)  # without echo, only the completion's token
    offsets, at = [], 0
    for piece in pieces:
        offsets.append(at)
        at += len(piece)
    logprobs = None
    if body.logprobs is not None:
        logprobs = {
            "tokens": pieces[shown:],
            "token_logprobs": scored.logprobs[shown:],
            "top_logprobs": [
                None if top is None else {backend.tokenizer.decode([t]): lp for t, lp in top.items()}
                for top in scored.top[shown:]
            ],
            "text_offset": offsets[shown:],
        }
    completion = "".join(pieces[len(prompt) :])
    metrics.REQUESTS.labels(*labels, "ok").inc()
    usage = {"prompt_tokens": len(prompt), "completion_tokens": len(pieces) - len(prompt)}
    return JSONResponse(
        {
            "id": f"cmpl-{uuid.uuid4().hex}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": body.model,
            "choices": [
                {
                    "index": 0,
                    "text": (text if body.echo else "") + completion,
                    "logprobs": logprobs,
                    "finish_reason": "length",
                }
            ],
            "usage": usage | {"total_tokens": usage["prompt_tokens"] + usage["completion_tokens"]},
        }
    )


@routing.post("/{name}/decide", response_model=RouteDecisionView)
async def decide(name: str, body: DecideRequest, inference: InferenceDep) -> RouteDecisionView:
    """Which target the router deployment `name` picks for `prompt`; the gateway sends the request there."""
    router = inference.deployments.routers.loaded.get(name)
    if router is None:
        raise Problem(404, "router-not-found", f"no router deployment {name}")
    began = time.perf_counter()
    view = await asyncio.to_thread(router.decide, body.prompt)
    metrics.ROUTER_SECONDS.labels(name).observe(time.perf_counter() - began)
    metrics.ROUTER_DECISIONS.labels(name, view.label, str(view.fallback).lower()).inc()
    return view


async def _engine(deployments: Deployments, model: str) -> tuple[Any, Any]:
    route = deployments.route(model)
    if route is None and model in deployments.routers.loaded:
        detail = f"{model} is a router: call it through the gateway, which sends the request to the target it picks"
        raise Problem(400, "router-not-callable-here", detail, param="model")
    if route is None:
        deployment = deployments.deployments.get(model)
        if deployment is not None and deployment.status == "loading":
            raise Problem(503, "model-loading", f"model {model} is loading", retry_after=1)
        raise Problem(404, "model_not_found", f"the model {model} does not exist", param="model")
    return await deployments.engine_for(route), route


def _max_tokens(settings: InferenceSettings, max_tokens: int | None) -> int:
    if max_tokens is not None and max_tokens > settings.inference_max_tokens:
        raise Problem(
            400,
            "max-tokens-too-large",
            f"max_tokens may be at most {settings.inference_max_tokens}",
            param="max_tokens",
        )
    return max_tokens or settings.inference_max_tokens


async def _relay(
    settings: InferenceSettings, engine: ProxyEngine, route: Any, body: Sampling, *, chat: bool
) -> JSONResponse | StreamingResponse:
    """Answer through an engine that takes OpenAI bodies itself (a vLLM server, llama.cpp): same bounds as our own
    engine, the adapter (or the base) named by its artifact id."""
    payload = body.model_dump(exclude_none=True, exclude={"max_completion_tokens"})
    requested = body.max_completion_tokens if isinstance(body, ChatCompletionRequest) else None
    payload["max_tokens"] = _max_tokens(settings, requested or body.max_tokens)
    endpoint = "/v1/chat/completions" if chat else "/v1/completions"
    labels = (route.deployment, body.model)
    backend = engine.backend
    try:
        if not body.stream:
            answer = await backend.complete(endpoint, payload, route.adapter_id, body.model)
            count_usage(*labels, answer.get("usage"))
            metrics.REQUESTS.labels(*labels, "ok").inc()
            return JSONResponse(answer)
        chunks = backend.stream(endpoint, payload, route.adapter_id, body.model)
        # The first chunk is awaited here, so a refusal is still an HTTP error rather than a broken stream.
        first = await anext(chunks, None)
    except RelayBusy as error:
        metrics.REQUESTS.labels(*labels, "rejected").inc()
        raise Problem(429, "queue-full", str(error), retry_after=settings.inference_retry_after_s) from None
    except AdapterBudgetExceeded as error:
        metrics.REQUESTS.labels(*labels, "rejected").inc()
        raise Problem(503, "adapters-busy", str(error), retry_after=settings.inference_retry_after_s) from None
    except RelayError as error:
        metrics.REQUESTS.labels(*labels, "failed").inc()
        slug = backend.refused_slug if 400 <= error.status < 500 else "generation-failed"
        raise Problem(error.status, slug, str(error)) from None
    started = time.perf_counter()

    async def events() -> AsyncIterator[str]:
        try:
            if first is not None:
                metrics.TIME_TO_FIRST_TOKEN.labels(*labels).observe(time.perf_counter() - started)
                yield f"data: {json.dumps(first)}\n\n"
            async for chunk in chunks:
                if not chunk.get("choices"):
                    count_usage(*labels, chunk.get("usage"))
                yield f"data: {json.dumps(chunk)}\n\n"
        except RelayError as error:
            metrics.REQUESTS.labels(*labels, "failed").inc()
            error_member = openai_error_of(Problem(503, "generation-failed", str(error)))
            yield f"data: {json.dumps({'error': error_member})}\n\n"
            return
        finally:
            await chunks.aclose()  # also when the client goes away: the engine's request is closed, its slot freed
        metrics.REQUESTS.labels(*labels, "ok").inc()
        yield "data: [DONE]\n\n"

    return StreamingResponse(
        events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )


async def _start(
    settings: InferenceSettings, engine: Any, route: Any, body: Sampling, prompt: list[int], max_tokens: int | None
) -> Generation:
    room = engine.backend.max_context - len(prompt)
    if room <= 0:
        raise Problem(400, "context_length_exceeded", f"the prompt is {len(prompt)} tokens", param="messages")
    max_tokens = _max_tokens(settings, max_tokens)
    stop = (body.stop,) if isinstance(body.stop, str) else tuple(body.stop or ())
    params = SamplingParams(
        max_tokens=min(max_tokens, room),
        temperature=body.temperature,
        top_p=body.top_p,
        stop=tuple(s for s in stop if s),
        seed=body.seed,
    )
    generation = Generation(engine, route, body.model, prompt, params)
    try:
        await generation.start()
    except QueueFull as error:
        metrics.REQUESTS.labels(route.deployment, body.model, "rejected").inc()
        raise Problem(429, "queue-full", str(error), retry_after=settings.inference_retry_after_s) from None
    except AdapterBudgetExceeded as error:
        metrics.REQUESTS.labels(route.deployment, body.model, "rejected").inc()
        raise Problem(503, "adapters-busy", str(error), retry_after=settings.inference_retry_after_s) from None
    return generation


async def _answer(generation: Generation, body: Sampling, *, chat: bool) -> JSONResponse | StreamingResponse:
    created = int(time.time())
    ident = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}"
    labels = (generation.route.deployment, body.model)
    if body.stream:
        return StreamingResponse(
            _stream(generation, body, ident, created, chat),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    try:
        text = await generation.text()
    except GenerationFailed as error:
        metrics.REQUESTS.labels(*labels, "failed").inc()
        raise Problem(503, "generation-failed", str(error)) from None
    metrics.REQUESTS.labels(*labels, "ok").inc()
    choice: dict[str, Any] = {"index": 0, "finish_reason": generation.finish_reason, "logprobs": None}
    if chat:
        choice["message"] = {"role": "assistant", "content": text}
    else:
        choice["text"] = text
    return JSONResponse(
        {
            "id": ident,
            "object": "chat.completion" if chat else "text_completion",
            "created": created,
            "model": body.model,
            "choices": [choice],
            "usage": generation.usage.as_dict(),
        }
    )


async def _stream(generation: Generation, body: Sampling, ident: str, created: int, chat: bool) -> AsyncIterator[str]:
    kind = "chat.completion.chunk" if chat else "text_completion"

    def chunk(delta: str | None, finish: str | None, first: bool = False) -> str:
        choice: dict[str, Any] = {"index": 0, "finish_reason": finish, "logprobs": None}
        if chat:
            choice["delta"] = ({"role": "assistant", "content": ""} if first else {}) | (
                {"content": delta} if delta is not None else {}
            )
        else:
            choice["text"] = delta or ""
        payload = {"id": ident, "object": kind, "created": created, "model": body.model, "choices": [choice]}
        return f"data: {json.dumps(payload)}\n\n"

    labels = (generation.route.deployment, body.model)
    if chat:
        yield chunk(None, None, first=True)
    try:
        async for delta in generation.deltas():
            yield chunk(delta, None)
    except GenerationFailed as error:
        metrics.REQUESTS.labels(*labels, "failed").inc()
        error_member = openai_error_of(Problem(503, "generation-failed", str(error)))
        yield f"data: {json.dumps({'error': error_member})}\n\n"
        return
    yield chunk(None, generation.finish_reason)
    payload = {
        "id": ident,
        "object": kind,
        "created": created,
        "model": body.model,
        "choices": [],
        "usage": generation.usage.as_dict(),
    }
    yield f"data: {json.dumps(payload)}\n\n"
    metrics.REQUESTS.labels(*labels, "ok").inc()
    yield "data: [DONE]\n\n"
