"""A stand-in for the inference service behind the gateway: a small ASGI app the gateway's inference client is pointed
at for a while, so its routes answer without a model."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from .support import PROBLEM_JSON


class FakeInference:
    """An inference service stand-in: knows the deployments in `known`, records what it was sent."""

    def __init__(self) -> None:
        self.known: dict[str, dict[str, Any]] = {}
        self.received: list[tuple[str, dict[str, Any], dict[str, str]]] = []
        self.app = FastAPI()
        self.app.add_api_route("/v1/deployments", self.list, methods=["GET"])
        self.app.add_api_route("/v1/deployments/{name}", self.get, methods=["GET"])
        self.app.add_api_route("/v1/models", self.models, methods=["GET"])
        self.app.add_api_route("/v1/chat/completions", self.complete, methods=["POST"])
        self.app.add_api_route("/v1/completions", self.complete, methods=["POST"])

    async def list(self) -> list[dict[str, Any]]:
        return list(self.known.values())

    async def get(self, name: str) -> Response:
        if name not in self.known:
            return JSONResponse({"status": 404, "title": "not found"}, 404, media_type=PROBLEM_JSON)
        return JSONResponse(self.known[name])

    async def models(self) -> dict[str, Any]:
        return {"object": "list", "data": [{"id": "m", "object": "model", "created": 0, "owned_by": "m"}]}

    async def complete(self, request: Request) -> Response:
        try:
            body = await request.json()
            model = body["model"]
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"status": 400, "title": "bad request"}, 400, media_type=PROBLEM_JSON)
        self.received.append((request.url.path, body, dict(request.headers)))
        if model == "loading":
            error = {"message": "loading", "type": "server_error", "param": None, "code": "model-loading"}
            problem = {"status": 503, "title": "loading", "error": error}
            return JSONResponse(problem, 503, headers={"Retry-After": "1"}, media_type=PROBLEM_JSON)
        if body.get("stream"):

            async def chunks() -> AsyncIterator[str]:
                for piece in ("he", "llo"):
                    yield f"data: {json.dumps({'choices': [{'delta': {'content': piece}}]})}\n\n"
                yield "data: [DONE]\n\n"

            return StreamingResponse(chunks(), media_type="text/event-stream")
        return JSONResponse({"object": "chat.completion", "choices": [{"message": {"content": "hello"}}]})


@contextlib.asynccontextmanager
async def inference_at(app: FastAPI, client: httpx.AsyncClient) -> AsyncIterator[None]:
    """The gateway `app` talking to `client`'s inference service for a while."""
    state = app.state
    previous = state.inference_client
    state.inference_client = client
    try:
        yield
    finally:
        state.inference_client = previous


@contextlib.asynccontextmanager
async def fake_inference(app: FastAPI) -> AsyncIterator[FakeInference]:
    """The gateway `app` answered by a FakeInference for a while."""
    fake = FakeInference()
    transport = httpx.ASGITransport(app=fake.app)
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://inference") as client,
        inference_at(app, client),
    ):
        yield fake
