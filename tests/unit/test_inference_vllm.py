"""The vLLM backend against a fake vLLM OpenAI server held in memory: runtime adapter loading and unloading (budget,
least recently used, never one in use), completions relayed with the adapter as vLLM's model name, SSE relayed as it
streams, revocation mid-stream, and the inference API (and the official openai client) on top of it; plus how the
backend is chosen."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import httpx
import openai
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from modelops_inference import vllm
from modelops_inference.adapter_slots import AdapterBudgetExceeded
from modelops_inference.app import create_app
from modelops_inference.deployments import Deployment, Deployments, ProxyEngine, Route
from modelops_inference.deps import Inference, get_inference
from modelops_inference.relay import RelayBusy, RelayError
from modelops_inference.settings import InferenceSettings
from modelops_inference.vllm import VllmBackend, choose_backend
from modelops_shared.artifacts import ArtifactClient
from modelops_shared.service_tokens import ServiceAuth, ServiceIdentity, keygen

BASE = "base-1234"
WORDS = ["one", " two", " three"]


class FakeVllm:
    """vLLM's OpenAI server as far as this backend uses it: runtime LoRA routes and (streamed) completions."""

    def __init__(self) -> None:
        self.loaded: dict[str, str] = {}
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.app = FastAPI()
        app = self.app

        @app.get("/health")
        async def health() -> dict[str, str]:
            return {}

        @app.post("/v1/load_lora_adapter")
        async def load(request: Request) -> Any:
            body = await request.json()
            self.calls.append(("load", body))
            if body["lora_name"] in self.loaded:
                return JSONResponse(_error(f"The lora adapter '{body['lora_name']}' has already been loaded."), 400)
            self.loaded[body["lora_name"]] = body["lora_path"]
            return f"Success: LoRA adapter '{body['lora_name']}' added successfully."

        @app.post("/v1/unload_lora_adapter")
        async def unload(request: Request) -> Any:
            body = await request.json()
            self.calls.append(("unload", body))
            if self.loaded.pop(body["lora_name"], None) is None:
                return JSONResponse(_error(f"The lora adapter '{body['lora_name']}' cannot be found."), 404)
            return f"Success: LoRA adapter '{body['lora_name']}' removed successfully."

        @app.post("/v1/completions", response_model=None)
        async def completions(request: Request) -> JSONResponse | StreamingResponse:
            return await self._answer(await request.json(), chat=False)

        @app.post("/v1/chat/completions", response_model=None)
        async def chat(request: Request) -> JSONResponse | StreamingResponse:
            return await self._answer(await request.json(), chat=True)

    async def _answer(self, body: dict[str, Any], *, chat: bool) -> JSONResponse | StreamingResponse:
        self.calls.append(("chat" if chat else "completion", body))
        if body["model"] not in (BASE, *self.loaded):
            return JSONResponse(_error(f"The model `{body['model']}` does not exist."), 404)
        words = WORDS[: body.get("max_tokens", len(WORDS))]
        usage = {"prompt_tokens": 4, "completion_tokens": len(words), "total_tokens": 4 + len(words)}
        kind = "chat.completion" if chat else "text_completion"
        if not body.get("stream"):
            text = "".join(words)
            choice = {"index": 0, "finish_reason": "length"} | (
                {"message": {"role": "assistant", "content": text}} if chat else {"text": text}
            )
            answer = {"id": "x", "object": kind, "model": body["model"], "choices": [choice], "usage": usage}
            return JSONResponse(answer)

        async def events() -> AsyncIterator[str]:
            for word in words:
                delta = {"delta": {"content": word}} if chat else {"text": word}
                chunk = {"id": "x", "object": f"{kind}.chunk" if chat else kind, "model": body["model"]}
                yield f"data: {json.dumps(chunk | {'choices': [{'index': 0, 'finish_reason': None} | delta]})}\n\n"
            if body.get("stream_options", {}).get("include_usage"):
                yield f"data: {json.dumps({'id': 'x', 'model': body['model'], 'choices': [], 'usage': usage})}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")


def _error(message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "BadRequestError", "code": 400}}


@pytest.fixture
async def fake() -> FakeVllm:
    return FakeVllm()


@pytest.fixture
async def backend(fake: FakeVllm) -> AsyncIterator[VllmBackend]:
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=fake.app), base_url="http://vllm")
    backend = VllmBackend(BASE, client, max_adapters=2, max_in_flight=4)
    yield backend
    await backend.close()


async def test_adapters_load_once_by_artifact_id_and_unload_least_recently_used(
    fake: FakeVllm, backend: VllmBackend
) -> None:
    await backend.wait_healthy(5)
    for name in ("a", "b", "a"):
        await backend.acquire_adapter(name, Path(f"/cache/{name}"))
        backend.release_adapter(name)
    assert fake.loaded == {"a": "/cache/a", "b": "/cache/b"}
    assert [kind for kind, _ in fake.calls] == ["load", "load"]
    await backend.acquire_adapter("c", Path("/cache/c"))  # b is least recently used
    assert set(fake.loaded) == {"a", "c"}
    assert backend.loaded_adapters() == ["a", "c"]
    assert fake.calls[-2:] == [("unload", {"lora_name": "b"}), ("load", {"lora_name": "c", "lora_path": "/cache/c"})]
    await backend.acquire_adapter("a", Path("/cache/a"))
    with pytest.raises(AdapterBudgetExceeded):  # both held: neither may be evicted
        await backend.acquire_adapter("d", Path("/cache/d"))
    backend.release_adapter("a")
    await backend.remove_adapter("a")
    assert set(fake.loaded) == {"c"}
    backend.release_adapter("c")


async def test_an_adapter_vllm_already_holds_counts_as_loaded_and_a_refusal_is_an_error(
    fake: FakeVllm, backend: VllmBackend
) -> None:
    fake.loaded["kept"] = "/cache/kept"  # the server outlived our bookkeeping
    await backend.acquire_adapter("kept", Path("/cache/kept"))
    backend.release_adapter("kept")
    assert backend.loaded_adapters() == ["kept"]

    @fake.app.post("/v1/load_lora_adapter", include_in_schema=False)
    async def refuse() -> JSONResponse:  # routes registered later are shadowed: replace the router's first match
        return JSONResponse(_error("LoRA rank 128 is greater than max_lora_rank 64."), 400)

    fake.app.router.routes.insert(0, fake.app.router.routes.pop())
    with pytest.raises(RelayError, match="max_lora_rank") as refused:
        await backend.acquire_adapter("wide", Path("/cache/wide"))
    assert refused.value.status == 400
    assert "wide" not in backend.loaded_adapters()


async def test_completions_name_the_adapter_upstream_and_the_requested_model_downstream(
    fake: FakeVllm, backend: VllmBackend
) -> None:
    await backend.acquire_adapter("a", Path("/cache/a"))
    answer = await backend.complete("/v1/completions", {"prompt": "hi", "max_tokens": 2, "stop": None}, "a", "dep")
    assert answer["model"] == "dep"
    assert answer["choices"][0]["text"] == "one two"
    assert fake.calls[-1] == ("completion", {"prompt": "hi", "max_tokens": 2, "model": "a", "stream": False})
    base = await backend.complete("/v1/completions", {"prompt": "hi"}, None, "plain")
    assert fake.calls[-1][1]["model"] == BASE
    assert base["model"] == "plain"
    with pytest.raises(RelayError) as missing:
        await backend.complete("/v1/completions", {"prompt": "hi"}, "never-loaded", "x")
    assert missing.value.status == 404
    assert "does not exist" in str(missing.value)
    backend.release_adapter("a")


async def test_streams_are_relayed_chunk_by_chunk_with_usage_last(fake: FakeVllm, backend: VllmBackend) -> None:
    await backend.acquire_adapter("a", Path("/cache/a"))
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}
    chunks = [chunk async for chunk in backend.stream("/v1/chat/completions", body, "a", "dep/a")]
    assert fake.calls[-1][1]["stream_options"] == {"include_usage": True}
    assert fake.calls[-1][1]["model"] == "a"
    assert {chunk["model"] for chunk in chunks} == {"dep/a"}
    assert "".join(c["choices"][0]["delta"]["content"] for c in chunks if c["choices"]) == "one two three"
    assert chunks[-1]["usage"]["completion_tokens"] == 3
    backend.release_adapter("a")


async def test_a_revoked_adapter_stops_its_streams_and_the_in_flight_bound_holds(backend: VllmBackend) -> None:
    await backend.acquire_adapter("a", Path("/cache/a"))
    stream = backend.stream("/v1/completions", {"prompt": "hi"}, "a", "dep")
    assert (await anext(stream))["choices"][0]["text"] == "one"
    backend.abort("a", "artifact a was revoked: leaked data")
    with pytest.raises(RelayError, match="revoked"):
        await anext(stream)
    backend.release_adapter("a")
    streams = [backend.stream("/v1/completions", {"prompt": "hi"}, None, "m") for _ in range(5)]
    for opened in streams[:4]:
        await anext(opened)
    with pytest.raises(RelayBusy):
        await anext(streams[4])
    for opened in streams[:4]:
        await opened.aclose()
    assert [c async for c in backend.stream("/v1/completions", {"prompt": "hi"}, None, "m")]


@pytest.fixture
async def served(backend: VllmBackend, fake: FakeVllm, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The inference API with one deployment `dep` (adapter `a` on a vLLM engine), served in memory, called as the
    gateway calls it (with a service token)."""
    keygen(tmp_path, ["inference", "gateway"])
    settings = InferenceSettings(inference_max_tokens=16, inference_backend="vllm", service_keys_dir=tmp_path)
    artifacts = ArtifactClient("http://registry", tmp_path / "cache")
    deployments = Deployments(settings, artifacts)
    deployments.engines[BASE] = ProxyEngine(backend, "vllm")
    await backend.acquire_adapter("a", Path("/cache/a"))
    backend.release_adapter("a")
    deployments.deployments["dep"] = Deployment("dep", BASE, ["a"], "ready", base_id=BASE, adapter_ids=["a"])
    deployments.routes["dep"] = Route("dep", BASE, "a", Path("/cache/a"))
    deployments.routes["plain"] = Route("plain", BASE, None, None)
    app = create_app(settings, overrides={get_inference: lambda: Inference(settings, deployments)})
    gateway = ServiceIdentity.from_settings(settings.model_copy(update={"service_name": "gateway"}))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://inference", auth=gateway.auth("inference")
    ) as client:
        yield client
    await artifacts.aclose()


async def test_the_api_relays_to_vllm_with_its_own_bounds(served: httpx.AsyncClient, fake: FakeVllm) -> None:
    response = await served.post("/v1/completions", json={"model": "dep", "prompt": "hi", "max_tokens": 2})
    assert response.status_code == 200, response.text
    assert response.json()["model"] == "dep"
    assert response.json()["choices"][0]["text"] == "one two"
    chat = {"model": "plain", "messages": [{"role": "user", "content": "hi"}], "max_completion_tokens": 3}
    response = await served.post("/v1/chat/completions", json=chat)
    assert response.json()["choices"][0]["message"]["content"] == "one two three"
    assert fake.calls[-1][1]["model"] == BASE
    assert fake.calls[-1][1]["max_tokens"] == 3
    assert "max_completion_tokens" not in fake.calls[-1][1]
    too_long = await served.post("/v1/completions", json={"model": "dep", "prompt": "hi", "max_tokens": 17})
    assert too_long.status_code == 400
    assert too_long.json()["error"]["code"] == "max-tokens-too-large"
    await served.post("/v1/completions", json={"model": "dep", "prompt": "hi"})
    assert fake.calls[-1][1]["max_tokens"] == 16  # the service's bound, as with its own engine
    streamed = await served.post("/v1/completions", json={"model": "dep", "prompt": "hi", "stream": True})
    events = [line.removeprefix("data: ") for line in streamed.text.split("\n\n") if line]
    assert events[-1] == "[DONE]"
    assert json.loads(events[-2])["usage"]["total_tokens"] == 7
    assert "".join(json.loads(e)["choices"][0]["text"] for e in events[:-2]) == "one two three"


async def test_a_vllm_refusal_reaches_the_client_as_an_openai_error(served: httpx.AsyncClient, fake: FakeVllm) -> None:
    fake.loaded.clear()  # vLLM lost the adapter: it answers 404 for the model
    response = await served.post("/v1/completions", json={"model": "dep", "prompt": "hi", "stream": True})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "vllm-refused"


async def test_the_openai_client_streams_through_the_vllm_engine(served: httpx.AsyncClient) -> None:
    token = cast(ServiceAuth, served.auth).identity.token("inference")  # OpenAI's client sends its key as a bearer
    client = openai.AsyncOpenAI(api_key=token, base_url="http://inference/v1", http_client=served)
    stream = await client.chat.completions.create(
        model="dep", messages=[{"role": "user", "content": "hi"}], max_tokens=3, stream=True
    )
    pieces = [chunk.choices[0].delta.content async for chunk in stream if chunk.choices]
    assert "".join(p for p in pieces if p) == "one two three"


def test_the_backend_is_vllm_only_where_it_can_run(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    import torch

    found = {"vllm": None}
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: found.get(name))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert choose_backend("auto") == "transformers"  # no vllm
    found["vllm"] = object()  # type: ignore[assignment]
    assert choose_backend("auto") == "vllm"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert choose_backend("auto") == "transformers"  # no GPU
    assert choose_backend("vllm") == "vllm"
    assert choose_backend("transformers") == "transformers"
    assert vllm.vllm_available() is False


def test_the_vllm_server_is_started_with_runtime_lora_updating(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    started: dict[str, Any] = {}

    async def spawn(*command: str, env: dict[str, str]) -> Any:
        started.update(command=command, env=env)
        raise OSError("not here")

    monkeypatch.setattr(asyncio, "create_subprocess_exec", spawn)
    settings = InferenceSettings(inference_max_adapters=3, inference_vllm_args="--gpu-memory-utilization 0.5")
    with pytest.raises(OSError, match="not here"):
        asyncio.run(VllmBackend.launch(BASE, Path("/cache/base"), settings))
    command = list(started["command"])
    assert command[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]
    assert command[command.index("--model") + 1] == "/cache/base"
    assert command[command.index("--served-model-name") + 1] == BASE
    assert "--enable-lora" in command
    assert command[command.index("--max-loras") + 1] == "3"
    assert command[-2:] == ["--gpu-memory-utilization", "0.5"]
    assert started["env"]["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "True"
