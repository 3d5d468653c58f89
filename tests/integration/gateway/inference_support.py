"""A stand-in for the inference service behind the test gateway, injected when the gateway's app is created: a small
ASGI app (FakeInference) answers its routes without a model, or a real inference service does, for a while."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from .support import PROBLEM_JSON


def problem(status: int, slug: str, **members: Any) -> JSONResponse:
    body = {"type": f"https://modelops.dev/problems/{slug}", "title": slug, "status": status, **members}
    return JSONResponse(body, status, media_type=PROBLEM_JSON)


class FakeInference:
    """An inference service stand-in that answers as the real one does, without a model: knows the deployments in
    `known`, records what it was sent, and decides for a router what `decisions` says (by router name)."""

    def __init__(self) -> None:
        self.known: dict[str, dict[str, Any]] = {}
        self.decisions: dict[str, dict[str, Any]] = {}
        self.received: list[tuple[str, dict[str, Any], dict[str, str]]] = []
        self.app = FastAPI()
        self.app.add_api_route("/v1/deployments", self.list, methods=["GET"])
        self.app.add_api_route("/v1/deployments/{name}", self.get, methods=["GET"])
        self.app.add_api_route("/v1/models", self.models, methods=["GET"])
        self.app.add_api_route("/v1/chat/completions", self.complete, methods=["POST"])
        self.app.add_api_route("/v1/completions", self.complete, methods=["POST"])
        self.app.add_api_route("/v1/routers/{name}/decide", self.decide, methods=["POST"])
        self.app.add_api_route("/metrics", self.metrics, methods=["GET"])

    async def list(self) -> list[dict[str, Any]]:
        return list(self.known.values())

    async def get(self, name: str) -> Response:
        if name not in self.known:
            return problem(404, "deployment-not-found")
        return JSONResponse(self.known[name])

    async def decide(self, name: str, request: Request) -> Response:
        self.received.append((request.url.path, await request.json(), dict(request.headers)))
        if name not in self.decisions:
            return problem(404, "router-not-found")
        return JSONResponse(self.decisions[name])

    async def metrics(self) -> Response:
        """One completion request per known deployment, as the real service's exposition counts it."""
        lines = [
            f'modelops_inference_requests_total{{deployment="{name}",model="{name}",outcome="ok"}} 1.0'
            for name in self.known
        ]
        return Response("\n".join(["# TYPE modelops_inference_requests_total counter", *lines]) + "\n")

    async def models(self) -> dict[str, Any]:
        return {"object": "list", "data": [{"id": "m", "object": "model", "created": 0, "owned_by": "m"}]}

    async def complete(self, request: Request) -> Response:
        body = await request.json()  # the gateway checked it against the same request models as the real service
        self.received.append((request.url.path, body, dict(request.headers)))
        if body["model"] == "loading":
            error = {"message": "loading", "type": "server_error", "param": None, "code": "model-loading"}
            answer = problem(503, "model-loading", error=error)
            answer.headers["Retry-After"] = "1"
            return answer
        if body.get("stream"):

            async def chunks() -> AsyncIterator[str]:
                for piece in ("he", "llo"):
                    yield f"data: {json.dumps({'choices': [{'delta': {'content': piece}}]})}\n\n"
                yield "data: [DONE]\n\n"

            return StreamingResponse(chunks(), media_type="text/event-stream")
        if request.url.path == "/v1/completions":
            return JSONResponse({"object": "text_completion", "choices": [{"text": "hello"}]})
        return JSONResponse({"object": "chat.completion", "choices": [{"message": {"content": "hello"}}]})


class InferenceStandIn(httpx.AsyncBaseTransport):
    """The inference service as the test gateway reaches it, injected through `create_app(overrides=…)`: nothing
    answers (connection refused) until a test points it at an app (`answered_by`) or a served URL (`served_at`)."""

    def __init__(self) -> None:
        self._target: httpx.AsyncBaseTransport | None = None
        self._url: httpx.URL | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._target is None:
            raise httpx.ConnectError("no inference service", request=request)
        if self._url is not None:
            request.url = request.url.copy_with(scheme=self._url.scheme, host=self._url.host, port=self._url.port)
        return await self._target.handle_async_request(request)

    @contextlib.asynccontextmanager
    async def answered_by(self, app: FastAPI) -> AsyncIterator[None]:
        async with self._pointed(httpx.ASGITransport(app=app), None):
            yield

    @contextlib.asynccontextmanager
    async def served_at(self, url: str) -> AsyncIterator[None]:
        async with httpx.AsyncHTTPTransport() as transport, self._pointed(transport, httpx.URL(url)):
            yield

    @contextlib.asynccontextmanager
    async def _pointed(self, target: httpx.AsyncBaseTransport, url: httpx.URL | None) -> AsyncIterator[None]:
        previous = self._target, self._url
        self._target, self._url = target, url
        try:
            yield
        finally:
            self._target, self._url = previous


@contextlib.asynccontextmanager
async def fake_inference(stand_in: InferenceStandIn) -> AsyncIterator[FakeInference]:
    """The gateway's inference service answered by a FakeInference for a while."""
    fake = FakeInference()
    async with stand_in.answered_by(fake.app):
        yield fake
