"""`modelops deploy …` and `modelops chat` (and the clients' `deployments` and `chat`) against the real gateway, its
inference service answered by the stand-in: what the gateway accepts, what it reads back, and a streamed answer."""

from __future__ import annotations

import json
import uuid

from deployables import stand_in
from gateway.inference_support import fake_inference
from modelops_contracts import ArtifactKind
from modelops_sdk import AsyncClient
from modelops_sdk.models import DeploymentStatus


def served(name: str, status: str, base: str, adapters: list[str], reason: str | None = None) -> dict[str, object]:
    """A deployment as the inference service reports it."""
    models = [name, *(f"{name}/{adapter}" for adapter in adapters)] if status == "ready" else []
    return {
        "name": name,
        "status": status,
        "reason": reason,
        "base_model": base,
        "base_model_id": base,
        "adapters": adapters,
        "adapter_ids": adapters,
        "models": models,
    }


async def test_deploy_create_waits_then_list_show_rm(gateway, cli, embedded_stack, bus, registry):
    developer = await gateway.keys.make("developer")
    base = await stand_in(embedded_stack, bus, registry, ArtifactKind.BASE_MODEL)
    lora_a, lora_b = [
        await stand_in(embedded_stack, bus, registry, ArtifactKind.ADAPTER, base_model=base) for _ in range(2)
    ]
    name = f"cli-{uuid.uuid4().hex[:8]}"
    async with fake_inference(gateway.inference) as fake:
        fake.known[name] = served(name, "ready", base, [lora_a])
        create = ("deploy", "create", name, "--base", base, "--adapter")
        created = await cli(developer.secret, *create, lora_a, "--json")
        assert created.code == 0, created.err
        assert json.loads(created.out)["models"] == [name, f"{name}/{lora_a}"]

        listed = await cli(developer.secret, "deploy", "list", "--json")
        assert name in {view["name"] for view in json.loads(listed.out)}
        shown = await cli(developer.secret, "deploy", "show", name)
        assert shown.code == 0
        assert "ready" in shown.out

        fake.known[name] = served(name, "failed", base, [lora_b], reason=f"adapter {lora_b} is revoked")
        failed = await cli(developer.secret, *create, lora_b)
        assert failed.code == 1  # a deployment that failed to load is the user's to fix
        assert f"{lora_b} is revoked" in failed.out

        removed = await cli(developer.secret, "deploy", "rm", name, "--json")
        assert (removed.code, json.loads(removed.out)["status"]) == (0, "removing")
        del fake.known[name]
        gone = await cli(developer.secret, "deploy", "show", name)
        assert gone.code == 1
        assert "deployment-not-found" in gone.err


async def test_chat_streams_the_answer_and_the_clients_ask(gateway, cli):
    viewer = await gateway.keys.make("viewer")
    async with fake_inference(gateway.inference) as fake:
        answered = await cli(viewer.secret, "chat", "m", "Say hello", "--max-tokens", "8", "--temperature", "0")
        assert answered.code == 0, answered.err
        assert answered.out == "hello\n"  # the stand-in streams "he", "llo"
        path, body, _ = fake.received[-1]
        assert path == "/v1/chat/completions"
        assert body["stream"] is True
        assert (body["max_tokens"], body["temperature"]) == (8, 0)
        assert body["messages"] == [{"role": "user", "content": "Say hello"}]

        async with AsyncClient(gateway.url, viewer.secret) as client:
            assert await client.chat.ask("m", "Say hello") == "hello"
            assert [piece async for piece in client.chat.stream("m", "Say hello")] == ["he", "llo"]
            fake.known["ready-one"] = served("ready-one", "ready", "base-1", [])
            view = await client.deployments.wait("ready-one", [], timeout_s=5)
            assert view.status == DeploymentStatus.ready
