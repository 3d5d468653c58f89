"""The shared web helpers, in memory: `state_dependency` (503 problem until the lifespan sets the state, overridable
with a fake) and the OpenAI error shape, read by the official openai client."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import asyncpg
import httpx
import openai
import pytest
from fastapi import APIRouter, Depends, FastAPI
from modelops_shared.openai_errors import OpenAIErrorRoute, openai_error_of
from modelops_shared.problems import PROBLEM_JSON, Problem, install_problem_handlers
from modelops_shared.service import DependencyOverrides, create_service_app, state_dependency
from modelops_shared.settings import Settings
from pydantic import BaseModel


@dataclass
class Context:
    name: str


get_context = state_dependency("context", Context, detail="the test service is starting")
ContextDep = Annotated[Context, Depends(get_context)]
PatientContextDep = Annotated[Context, Depends(state_dependency("context", Context, retry_after=1))]


class Body(BaseModel):
    model: str
    max_tokens: int


router = APIRouter(prefix="/v1", route_class=OpenAIErrorRoute)


@router.get("/context")
async def read_context(context: ContextDep) -> dict[str, str]:
    return {"name": context.name}


@router.post("/completions")
async def complete(body: Body, context: ContextDep) -> dict[str, str]:
    if body.model != context.name:
        raise Problem(404, "model_not_found", f"the model {body.model} does not exist", param="model")
    raise Problem(429, "queue-full", "too many requests", retry_after=3)


@router.post("/bounded", max_body_size=16)
async def bounded(body: Body) -> dict[str, str]:
    return {"model": body.model}


@router.get("/slow-dependency")
async def slow_dependency() -> None:
    raise TimeoutError  # as asyncpg raises it for a drained pool or a statement past its timeout


@router.get("/unstorable")
async def unstorable() -> None:
    raise asyncpg.CharacterNotInRepertoireError('invalid byte sequence for encoding "UTF8": 0x00')


def _app(overrides: DependencyOverrides | None = None) -> FastAPI:
    # Not internal: these tests are about errors and routes; tests/unit/test_service_tokens.py covers the tokens.
    app = create_service_app(Settings(service_name="web-test"), title="test", overrides=overrides, internal=False)
    app.include_router(router)
    return app


def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_the_state_is_a_503_problem_until_the_lifespan_sets_it() -> None:
    app = _app()
    async with _client(app) as client:
        response = await client.get("/v1/context")
        assert response.status_code == 503
        assert response.headers["content-type"] == PROBLEM_JSON
        assert response.json()["type"].endswith("/not-ready")
        assert response.json()["detail"] == "the test service is starting"
        assert "retry-after" not in response.headers
        app.state.context = Context("started")  # what the lifespan does once it has started
        assert (await client.get("/v1/context")).json() == {"name": "started"}


async def test_a_starting_service_may_say_when_to_retry() -> None:
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/context")
    async def read(context: PatientContextDep) -> str:
        return context.name

    async with _client(app) as client:
        response = await client.get("/context")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json()["retry_after"] == 1


async def test_overrides_answer_in_place_of_the_state() -> None:
    async with _client(_app({get_context: lambda: Context("fake")})) as client:
        assert (await client.get("/v1/context")).json() == {"name": "fake"}


async def test_errors_carry_openais_error_member() -> None:
    async with _client(_app({get_context: lambda: Context("m")})) as client:
        missing = await client.post("/v1/completions", json={"model": "other", "max_tokens": 1})
        assert missing.status_code == 404
        assert missing.headers["x-should-retry"] == "false"
        assert missing.json()["error"] == {
            "message": "the model other does not exist",
            "type": "invalid_request_error",
            "param": "model",
            "code": "model_not_found",
        }
        invalid = await client.post("/v1/completions", json={"model": "m", "max_tokens": "many"})
        assert invalid.status_code == 422
        assert invalid.json()["error"]["param"] == "max_tokens"
        assert invalid.json()["error"]["message"].startswith("the request is not valid; max_tokens: ")
        busy = await client.post("/v1/completions", json={"model": "m", "max_tokens": 1})
        assert busy.status_code == 429
        assert busy.headers["retry-after"] == "3"
        assert "x-should-retry" not in busy.headers
        assert busy.json()["error"]["type"] == "rate_limit_error"

        sdk = openai.AsyncOpenAI(api_key="unused", base_url="http://test/v1", http_client=client, max_retries=0)
        with pytest.raises(openai.NotFoundError) as raised:
            await sdk.completions.create(model="other", prompt="hi", max_tokens=1)
        assert (raised.value.code, raised.value.param, raised.value.type) == (
            "model_not_found",
            "model",
            "invalid_request_error",
        )
        assert "the model other does not exist" in str(raised.value)


def test_a_stream_error_has_the_same_member() -> None:
    error = openai_error_of(Problem(503, "generation-failed", "the engine stopped"))
    assert error == {
        "message": "the engine stopped",
        "type": "server_error",
        "param": None,
        "code": "generation-failed",
    }
    assert openai_error_of(Problem(400, "one-prompt", "send one prompt", param="prompt"))["param"] == "prompt"


async def test_text_postgres_cannot_store_is_the_clients_422() -> None:
    async with _client(_app()) as client:
        answer = await client.get("/v1/unstorable")
    assert answer.status_code == 422
    assert answer.json()["type"].endswith("/invalid-text")


async def test_a_dependency_too_slow_is_a_503_to_retry_not_a_500() -> None:
    async with _client(_app()) as client:
        answer = await client.get("/v1/slow-dependency")
    assert (answer.status_code, answer.json()["type"].rsplit("/", 1)[1]) == (503, "dependency-timeout")
    assert answer.headers["Retry-After"] == "5"


async def test_starlettes_own_413_is_a_problem_with_openais_member_and_a_stable_slug() -> None:
    async with _client(_app()) as client:
        answer = await client.post("/v1/bounded", json={"model": "m" * 64, "max_tokens": 1})
    assert answer.status_code == 413
    assert answer.headers["content-type"].startswith(PROBLEM_JSON)
    assert answer.json()["type"].endswith("/body-too-large")
    assert answer.json()["error"]["code"] == "body-too-large"


async def test_a_405_names_every_method_of_the_path() -> None:
    async with _client(_app()) as client:
        answer = await client.delete("/v1/context")
    assert answer.status_code == 405
    assert answer.headers["allow"] == "GET"
