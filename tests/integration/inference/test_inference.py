"""The inference service end to end on the tiny model: deployments by events, verified loading, adapters on one base,
batched generation equal to PEFT's, OpenAI streaming, revocation, and a Deploy that waits for its adapter to be
registered."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
import openai
import pytest
from deployables import promote
from helpers import identity, service_auth
from modelops_contracts import Deploy, DeploymentFailed, DeploymentReady
from modelops_inference.app import create_app as create_inference
from modelops_inference.deployments import Deployments
from modelops_inference.revocations import recheck
from modelops_shared.artifacts import ArtifactClient
from modelops_shared.bus import Bus
from modelops_shared.settings import Settings
from modelops_shared.storage import open_store
from servers import serving

from .support import WAIT_S, deploy, inference_settings, make_adapter, reference, settled, submit_adapter

PROMPTS = ["the cat sat on the", "numbers one two three", "hello", "a long time ago in a"]
MAX_TOKENS = 8


async def _complete(inference: httpx.AsyncClient, model: str, prompt: str) -> str:
    response = await inference.post(
        "/v1/completions", json={"model": model, "prompt": prompt, "max_tokens": MAX_TOKENS, "temperature": 0}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["usage"]["completion_tokens"] <= MAX_TOKENS
    return str(body["choices"][0]["text"])


async def test_adapter_and_base_outputs_differ_and_equal_peft(
    bus: Bus,
    inference: httpx.AsyncClient,
    base_model: str,
    adapters: list[str],
    base_model_dir: Path,
    model_dir: Path,
) -> None:
    plain = await deploy(bus, inference, base_model, [])
    tuned = await deploy(bus, inference, base_model, [adapters[0]])
    assert (plain["status"], tuned["status"]) == ("ready", "ready"), (plain, tuned)
    base_text = await _complete(inference, plain["name"], PROMPTS[0])
    tuned_text = await _complete(inference, tuned["name"], PROMPTS[0])
    assert base_text != tuned_text
    assert base_text == await asyncio.to_thread(reference, base_model_dir, None, PROMPTS[0], MAX_TOKENS)
    assert tuned_text == await asyncio.to_thread(
        reference, base_model_dir, model_dir / "adapter-1", PROMPTS[0], MAX_TOKENS
    )
    models = {m["id"] for m in (await inference.get("/v1/models")).json()["data"]}
    assert {plain["name"], tuned["name"]} <= models


async def test_concurrent_mixed_adapters_equal_sequential(
    bus: Bus, inference: httpx.AsyncClient, base_model: str, adapters: list[str]
) -> None:
    deployment = await deploy(bus, inference, base_model, adapters)
    assert deployment["status"] == "ready", deployment
    first, second = (m for m in deployment["models"] if "/" in m)
    requests = [(model, prompt) for prompt in PROMPTS for model in (first, second)]
    sequential = [await _complete(inference, model, prompt) for model, prompt in requests]
    concurrent = await asyncio.gather(*(_complete(inference, model, prompt) for model, prompt in requests))
    assert list(concurrent) == sequential
    assert sequential[0] != sequential[1]


async def test_an_empty_prompt_is_refused_not_a_failed_generation(
    bus: Bus, inference: httpx.AsyncClient, base_model: str
) -> None:
    # Found by fuzzing the gateway: an empty prompt used to fail generation (a 503 for a client's mistake).
    deployment = await deploy(bus, inference, base_model, [])
    response = await inference.post("/v1/completions", json={"model": deployment["name"], "prompt": ""})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "empty-prompt"


async def test_a_body_past_the_limit_is_refused_while_it_streams(inference: httpx.AsyncClient) -> None:
    async def body():  # no Content-Length: the limit must hold as the bytes arrive
        yield b'{"model": "m", "messages": [{"role": "user", "content": "'
        for _ in range(5):
            yield b"x" * 1024 * 1024
        yield b'"}]}'

    response = await inference.post(
        "/v1/chat/completions", content=body(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413, response.text
    assert response.json()["error"]["message"]


async def test_streaming_through_the_openai_client(
    bus: Bus, inference: httpx.AsyncClient, base_model: str, adapters: list[str]
) -> None:
    deployment = await deploy(bus, inference, base_model, [adapters[1]])
    base_url = f"{str(inference.base_url).rstrip('/')}/v1"
    client = openai.AsyncOpenAI(base_url=base_url, api_key=identity().token("inference"))  # the gateway's token
    messages = [{"role": "user", "content": "hello there"}]
    whole = await client.chat.completions.create(
        model=deployment["name"],
        messages=messages,
        max_tokens=MAX_TOKENS,
        temperature=0,  # type: ignore[arg-type]
    )
    stream = await client.chat.completions.create(
        model=deployment["name"],
        messages=messages,
        max_tokens=MAX_TOKENS,
        temperature=0,
        stream=True,  # type: ignore[arg-type]
    )
    pieces, finish = [], None
    async for chunk in stream:
        assert chunk.object == "chat.completion.chunk"
        if chunk.choices:
            pieces.append(chunk.choices[0].delta.content or "")
            finish = chunk.choices[0].finish_reason or finish
    assert "".join(pieces) == whole.choices[0].message.content
    assert finish == whole.choices[0].finish_reason
    assert whole.usage is not None
    assert whole.usage.completion_tokens > 0
    with pytest.raises(openai.NotFoundError):
        await client.completions.create(model="no-such-model", prompt="x", max_tokens=2)
    await client.close()


async def test_tampered_adapter_is_refused(
    embedded_stack: Settings,
    bus: Bus,
    registry: httpx.AsyncClient,
    inference: httpx.AsyncClient,
    base_model: str,
    base_model_dir: Path,
    tmp_path: Path,
) -> None:
    make_adapter(base_model_dir, tmp_path / "adapter", 3)
    adapter = await submit_adapter(embedded_stack, bus, registry, tmp_path / "adapter", base_model, "lora-3")
    # Altered in the store after it was signed: the download's digest no longer matches the manifest.
    weights = tmp_path / "adapter" / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8] + b"tampered")
    await open_store(embedded_stack.store_url, embedded_stack).put(
        f"artifacts/{adapter}/adapter_model.safetensors", weights
    )
    deployment = await deploy(bus, inference, base_model, [adapter])
    assert deployment["status"] == "failed"
    assert "sha256" in deployment["reason"], deployment


async def test_revoked_adapter_is_unloaded_and_refused(
    embedded_stack: Settings,
    bus: Bus,
    registry: httpx.AsyncClient,
    inference: httpx.AsyncClient,
    base_model: str,
    base_model_dir: Path,
    tmp_path: Path,
) -> None:
    make_adapter(base_model_dir, tmp_path / "adapter", 4)
    adapter = await submit_adapter(embedded_stack, bus, registry, tmp_path / "adapter", base_model, "lora-4")
    deployment = await deploy(bus, inference, base_model, [adapter])
    assert deployment["status"] == "ready"
    await _complete(inference, deployment["name"], PROMPTS[1])
    await promote(registry, adapter, "revoked", reason="leaked training data")
    view = await settled(inference, deployment["name"], ("failed",))
    assert "revoked" in view["reason"]
    assert "leaked training data" in view["reason"]
    refused = await inference.post(
        "/v1/completions", json={"model": deployment["name"], "prompt": "x", "max_tokens": 2}
    )
    assert refused.status_code == 404
    assert refused.json()["error"]["code"] == "model_not_found"
    # A new deployment of the revoked adapter is refused at fetch time.
    again = await deploy(bus, inference, base_model, [adapter])
    assert again["status"] == "failed"
    assert "revoked" in again["reason"]


async def test_a_deploy_waits_for_an_adapter_registered_after_it(
    embedded_stack: Settings,
    bus: Bus,
    registry: httpx.AsyncClient,
    inference: httpx.AsyncClient,
    base_model: str,
    base_model_dir: Path,
    model_dir: Path,
) -> None:
    """As when the gateway deploys a fine-tuning job's adapter before the registry signed it: the deployment stays
    loading, then becomes ready once the adapter is registered."""
    adapter, name = f"lora-late-{uuid.uuid4().hex[:8]}", f"dep-{uuid.uuid4().hex[:8]}"
    await bus.publish(Deploy(name=name, base_model=base_model, adapters=[adapter], requested_by="alice"))
    async with asyncio.timeout(WAIT_S):
        while (response := await inference.get(f"/v1/deployments/{name}")).status_code != 200:
            await asyncio.sleep(0.1)
    await asyncio.sleep(2)  # a few seconds later, still waiting
    assert (await inference.get(f"/v1/deployments/{name}")).json()["status"] == "loading", response.json()

    await submit_adapter(embedded_stack, bus, registry, model_dir / "adapter-1", base_model, "lora-late", adapter)
    async with asyncio.timeout(WAIT_S):
        while (view := (await inference.get(f"/v1/deployments/{name}")).json())["status"] == "loading":
            await asyncio.sleep(0.1)
    assert view["status"] == "ready", view
    assert view["adapter_ids"] == [adapter]
    expected = await asyncio.to_thread(reference, base_model_dir, model_dir / "adapter-1", PROMPTS[0], MAX_TOKENS)
    assert await _complete(inference, name, PROMPTS[0]) == expected


async def test_a_revocation_the_replica_missed_is_caught_by_the_periodic_check(
    embedded_stack: Settings,
    bus: Bus,
    registry: httpx.AsyncClient,
    registry_url: str,
    base_model: str,
    base_model_dir: Path,
    tmp_path: Path,
) -> None:
    """A replica with no Kafka consumer at all (as one that missed the event): only the registry check can tell it."""
    make_adapter(base_model_dir, tmp_path / "adapter", 5)
    adapter = await submit_adapter(embedded_stack, bus, registry, tmp_path / "adapter", base_model, "lora-5")
    settings = inference_settings(embedded_stack, registry_url)
    async with ArtifactClient.from_settings(settings, settings.work_dir / "cache") as artifacts:
        deployments = Deployments(settings, artifacts)
        try:
            command = Deploy(name="missed", base_model=base_model, adapters=[adapter], requested_by="tests")
            ready = await deployments.deploy(command)
            assert isinstance(ready, DeploymentReady), ready
            announced: list[DeploymentFailed] = []

            async def announce(failed: DeploymentFailed) -> None:
                announced.append(failed)

            assert await recheck(deployments, deployments.registry, announce) == []  # nothing revoked yet
            await promote(registry, adapter, "revoked", reason="leaked data")
            assert await recheck(deployments, deployments.registry, announce) == [adapter]
            assert [failed.name for failed in announced] == ["missed"]
            assert deployments.route("missed") is None
            assert adapter not in deployments.served_artifacts()
        finally:
            await deployments.close()


async def test_every_replica_obeys_every_deploy_and_revocation(
    embedded_stack: Settings,
    registry_url: str,
    bus: Bus,
    registry: httpx.AsyncClient,
    base_model: str,
    base_model_dir: Path,
    tmp_path: Path,
) -> None:
    """Two replicas of one inference service (one schema and group prefix, two replica names), with no periodic
    registry check: only the bus can tell them. Both serve a Deploy, and one revocation stops both; the registry
    records each replica's answer."""
    make_adapter(base_model_dir, tmp_path / "adapter", 6)
    adapter = await submit_adapter(embedded_stack, bus, registry, tmp_path / "adapter", base_model, "lora-6")
    settings = inference_settings(embedded_stack, registry_url).model_copy(
        update={"inference_revocation_check_s": 0, "inference_restore": False}
    )
    replicas = [
        settings.model_copy(update={"inference_replica": name, "inference_work_dir": tmp_path / name})
        for name in ("replica-a", "replica-b")
    ]
    name = f"dep-{uuid.uuid4().hex[:8]}"
    async with (
        serving(create_inference(replicas[0])) as url_a,
        serving(create_inference(replicas[1])) as url_b,
        httpx.AsyncClient(base_url=url_a, timeout=60, auth=service_auth("inference")) as a,
        httpx.AsyncClient(base_url=url_b, timeout=60, auth=service_auth("inference")) as b,
    ):
        await bus.publish(Deploy(name=name, base_model=base_model, adapters=[adapter], requested_by="alice"))
        for replica in (a, b):
            assert (await settled(replica, name))["status"] == "ready"
            await _complete(replica, name, PROMPTS[0])
        await promote(registry, adapter, "revoked", reason="leaked data")
        for replica in (a, b):
            assert "revoked" in (await settled(replica, name, ("failed",)))["reason"]
            refused = await replica.post("/v1/completions", json={"model": name, "prompt": "x", "max_tokens": 2})
            assert refused.status_code == 404
    async with asyncio.timeout(WAIT_S):
        while True:
            rows = {row["name"]: row for row in (await registry.get("/v1/deployments")).json()}
            answers = {(r["replica"], r["status"]) for r in rows.get(name, {}).get("replicas", [])}
            if {("replica-a", "failed"), ("replica-b", "failed")} <= answers:  # the session's replica answers too
                break
            await asyncio.sleep(0.1)
