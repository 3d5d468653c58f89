"""Deployments and OpenAI inference through the gateway: Deploy and Undeploy on deployments.commands.v1 with the
caller as requested_by, role checks, governance (only what the policy deploys, names resolved to ids when the command
is accepted), status read from the inference service (`queued` until it knows the name), the
completions proxy (JSON and SSE passed through, problems with OpenAI's `error` member, limits) against a small fake
inference app, and one real end to end: a tiny model and adapter deployed through the gateway and answered to the
official `openai` client pointed at the gateway."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from deployables import promote, stand_in
from helpers import TopicTap
from modelops_contracts import ArtifactKind, Deploy, Undeploy
from modelops_contracts.catalog import DEPLOYMENT_COMMANDS
from modelops_shared.bus import Bus
from modelops_shared.settings import Settings
from servers import serving

from .conftest import RunningGateway
from .inference_support import FakeInference, fake_inference
from .support import WAIT_S, Key


@pytest.fixture(scope="module")
async def deployment_tap(embedded_stack: Settings) -> AsyncIterator[TopicTap]:
    async with TopicTap(embedded_stack, DEPLOYMENT_COMMANDS) as tap:
        yield tap


@pytest.fixture
async def fake(gateway: RunningGateway) -> AsyncIterator[FakeInference]:
    async with fake_inference(gateway.inference) as fake:
        yield fake


@pytest.fixture(scope="module")
async def servable(embedded_stack: Settings, bus: Bus, registry: httpx.AsyncClient) -> tuple[str, str]:
    """A base model and an adapter of it, both in staging."""
    base = await stand_in(embedded_stack, bus, registry, ArtifactKind.BASE_MODEL)
    return base, await stand_in(embedded_stack, bus, registry, ArtifactKind.ADAPTER, base_model=base)


async def test_deploy_is_a_command_with_the_caller_and_reads_queued_until_served(
    gateway: RunningGateway,
    keys: dict[str, Key],
    deployment_tap: TopicTap,
    fake: FakeInference,
    servable: tuple[str, str],
) -> None:
    base, adapter = servable
    name = f"dep-{uuid.uuid4().hex[:8]}"
    body = {"name": name, "base_model": base, "adapters": [adapter]}
    async with gateway.client(keys["viewer"].secret) as viewer, gateway.client(keys["developer"].secret) as dev:
        denied = await viewer.post("/v1/deployments", json=body)
        assert denied.status_code == 403, denied.text

        headers = {"Idempotency-Key": uuid.uuid4().hex}
        accepted = await dev.post("/v1/deployments", json=body, headers=headers)
        assert accepted.status_code == 202, accepted.text
        assert accepted.json() == {"name": name, "status": "queued"}
        replayed = await dev.post("/v1/deployments", json=body, headers=headers)
        assert replayed.headers["Idempotency-Replayed"] == "true"

        (command,) = await deployment_tap.wait_for(name, Deploy)
        assert (command.base_model, command.adapters) == (base, [adapter])
        assert command.requested_by == keys["developer"].name

        queued = (await viewer.get(f"/v1/deployments/{name}")).json()
        assert queued["status"] == "queued"
        assert queued["requested_by"] == keys["developer"].name
        assert name in {d["name"] for d in (await viewer.get("/v1/deployments")).json()}

        fake.known[name] = {
            "name": name,
            "status": "failed",
            "reason": f"adapter {adapter} is revoked",
            "base_model": base,
            "base_model_id": base,
            "adapters": [adapter],
            "adapter_ids": [adapter],
            "models": [],
        }
        failed = (await viewer.get(f"/v1/deployments/{name}")).json()
        assert (failed["status"], failed["reason"]) == ("failed", f"adapter {adapter} is revoked")

        assert (await viewer.delete(f"/v1/deployments/{name}")).status_code == 403
        removing = await dev.delete(f"/v1/deployments/{name}")
        assert removing.status_code == 202, removing.text
        (undeploy,) = await deployment_tap.wait_for(name, Undeploy)
        assert undeploy.requested_by == keys["developer"].name
        del fake.known[name]
        assert (await viewer.get(f"/v1/deployments/{name}")).status_code == 404
        assert (await dev.delete(f"/v1/deployments/{name}")).status_code == 404

        empty = await dev.post("/v1/deployments", json={"name": f"{name}-base", "base_model": base})
        assert empty.status_code == 202
        (base_only,) = await deployment_tap.wait_for(f"{name}-base", Deploy)
        assert base_only.adapters == []
        bad = await dev.post("/v1/deployments", json={"name": "Not A Name", "base_model": "b"})
        assert bad.status_code == 422


async def test_only_what_the_policy_deploys_is_deployed_and_names_resolve_to_ids_at_once(
    embedded_stack: Settings,
    bus: Bus,
    registry: httpx.AsyncClient,
    gateway: RunningGateway,
    keys: dict[str, Key],
    deployment_tap: TopicTap,
    servable: tuple[str, str],
) -> None:
    """Anything not in staging or prod is refused with the stage and what would do; a name deploys its latest
    artifact, as an id in the command, so a later artifact of that name does not change what is served."""
    base, adapter = servable
    in_dev = await stand_in(embedded_stack, bus, registry, ArtifactKind.ADAPTER, base_model=base, stage=None)
    other_base = await stand_in(embedded_stack, bus, registry, ArtifactKind.BASE_MODEL)
    foreign = await stand_in(embedded_stack, bus, registry, ArtifactKind.ADAPTER, base_model=other_base)
    name = f"dep-{uuid.uuid4().hex[:8]}"
    async with gateway.client(keys["developer"].secret) as dev:

        async def refused(body: dict[str, Any], status: int, slug: str) -> dict[str, Any]:
            response = await dev.post("/v1/deployments", json={"name": name, **body})
            assert response.status_code == status, response.text
            assert response.json()["type"].endswith(f"/{slug}"), response.text
            return dict(response.json())

        problem = await refused({"base_model": base, "adapters": [in_dev]}, 409, "artifact-not-deployable")
        assert (problem["stage"], problem["deployable_stages"], problem["param"]) == (
            "dev",
            ["prod", "staging"],
            "adapters[0]",
        )
        assert "promote it first" in problem["detail"]
        await refused({"base_model": "no-such-base"}, 404, "artifact-not-found")
        await refused({"base_model": adapter}, 422, "not-a-base-model")
        await refused({"base_model": base, "adapters": [base]}, 422, "not-an-adapter")
        await refused({"base_model": base, "adapters": [foreign]}, 422, "adapter-base-mismatch")
        await promote(registry, in_dev, "staging")
        await promote(registry, in_dev, "revoked")
        await refused({"base_model": base, "adapters": [in_dev]}, 409, "artifact-not-deployable")

        base_name = (await registry.get(f"/v1/artifacts/{base}")).json()["name"]
        accepted = await dev.post("/v1/deployments", json={"name": name, "base_model": base_name})
        assert accepted.status_code == 202, accepted.text
        (command,) = await deployment_tap.wait_for(name, Deploy)
        assert command.base_model == base  # the id the name stood for when the command was accepted


async def test_completions_are_proxied_with_auth_and_streams_pass_through(
    gateway: RunningGateway, keys: dict[str, Key], fake: FakeInference
) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    async with gateway.client(keys["viewer"].secret) as viewer, gateway.client() as anonymous:
        refused = await anonymous.post("/v1/chat/completions", json=body)
        assert refused.status_code == 401
        assert refused.json()["error"]["type"] == "authentication_error"

        answered = await viewer.post("/v1/chat/completions", json=body)
        assert answered.status_code == 200
        assert answered.json()["choices"][0]["message"]["content"] == "hello"
        assert "ratelimit-remaining" in answered.headers
        assert fake.received[-1][:2] == ("/v1/chat/completions", body)

        streamed = await viewer.post("/v1/completions", json={"model": "m", "prompt": "x", "stream": True})
        assert streamed.headers["content-type"].startswith("text/event-stream")
        assert streamed.text.endswith("data: [DONE]\n\n")
        assert streamed.text.count("data: ") == 3

        loading = await viewer.post("/v1/completions", json={"model": "loading", "prompt": "x"})
        assert loading.status_code == 503
        assert loading.headers["retry-after"] == "1"
        assert loading.json()["error"]["code"] == "model-loading"

        models = await viewer.get("/v1/models")
        assert models.status_code == 200
        assert models.json()["data"][0]["id"] == "m"


async def test_unreachable_inference_and_rate_limits_answer_openai_errors(gateway: RunningGateway) -> None:
    limited = await gateway.keys.make("viewer", rate_limit="2/minute")
    async with gateway.client(limited.secret) as client:  # the stand-in answers nothing: connection refused
        body = {"model": "m", "prompt": "x"}
        unreachable = await client.post("/v1/completions", json=body)
        assert unreachable.status_code == 503
        assert unreachable.json()["error"]["type"] == "server_error"
        assert (await client.get("/v1/deployments")).status_code == 503
        over = await client.post("/v1/completions", json=body)
        assert over.status_code == 429
        assert "retry-after" in over.headers
        assert over.json()["error"]["type"] == "rate_limit_error"


async def test_a_deployment_made_through_the_gateway_answers_the_openai_client(
    gateway: RunningGateway,
    keys: dict[str, Key],
    embedded_stack: Settings,
    registry_url: str,
    registry: httpx.AsyncClient,
    bus: Bus,
    base_model: str,
    base_model_dir: Path,
    tmp_path: Path,
) -> None:
    """The real thing: the tiny base model and an adapter registered, the inference service running, a deployment
    made through the gateway, and chat completions (plain and streamed) through the gateway with `openai`."""
    from inference.support import inference_settings, make_adapter, submit_adapter
    from modelops_inference.app import create_app as create_inference

    await asyncio.to_thread(make_adapter, base_model_dir, tmp_path / "adapter", 1)
    suffix = uuid.uuid4().hex[:8]
    adapter = await submit_adapter(embedded_stack, bus, registry, tmp_path / "adapter", base_model, f"lora-{suffix}")
    for artifact in (base_model, adapter):
        await promote(registry, artifact)  # what the policy deploys
    settings = inference_settings(embedded_stack, registry_url)
    async with (
        serving(create_inference(settings)) as inference_url,
        gateway.inference.served_at(inference_url),
        gateway.client(keys["developer"].secret) as dev,
    ):
        name = f"e2e-{suffix}"
        body = {"name": name, "base_model": base_model, "adapters": [adapter]}
        assert (await dev.post("/v1/deployments", json=body)).status_code == 202
        async with asyncio.timeout(WAIT_S):
            while (view := (await dev.get(f"/v1/deployments/{name}")).json())["status"] not in ("ready", "failed"):
                assert view["status"] in ("queued", "loading"), view
                await asyncio.sleep(0.1)
        assert view["status"] == "ready", view
        assert view["requested_by"] == keys["developer"].name

        client = openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key=keys["developer"].secret, max_retries=0)
        messages: Any = [{"role": "user", "content": "Tell me about the river."}]
        completion = await client.chat.completions.create(model=name, messages=messages, max_tokens=8, temperature=0)
        text = completion.choices[0].message.content
        assert text
        assert completion.usage
        assert completion.usage.completion_tokens > 0
        stream = await client.chat.completions.create(
            model=name, messages=messages, max_tokens=8, temperature=0, stream=True
        )
        pieces = [chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices]
        assert "".join(pieces) == text
        assert name in {model.id async for model in client.models.list()}
        with pytest.raises(openai.NotFoundError):
            await client.chat.completions.create(model="no-such-model", messages=messages, max_tokens=4)

        assert (await dev.delete(f"/v1/deployments/{name}")).status_code == 202
        async with asyncio.timeout(WAIT_S):
            while (await dev.get(f"/v1/deployments/{name}")).status_code != 404:
                await asyncio.sleep(0.1)
