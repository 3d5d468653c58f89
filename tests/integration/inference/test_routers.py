"""Router deployments on the real inference service: a registered spiking router over MiniLM is fetched and verified
with its embedding model, decides held-out prompts (the gateway then asks the target), lists as a model, answers no
completion itself, and stops when revoked."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import routing_prompts
from deployables import promote
from helpers import submit_router
from modelops_contracts import Deploy
from modelops_shared.bus import Bus
from modelops_shared.settings import Settings

from .support import settled


async def _deploy_router(bus: Bus, inference: httpx.AsyncClient, router: str, adapters: tuple[str, ...] = ()) -> dict:
    name = f"router-{uuid.uuid4().hex[:8]}"
    await bus.publish(Deploy(name=name, base_model=router, adapters=list(adapters), requested_by="alice"))
    return await settled(inference, name)


async def test_a_router_deployment_decides_held_out_prompts_and_answers_nothing_itself(
    embedded_stack: Settings,
    bus: Bus,
    registry: httpx.AsyncClient,
    inference: httpx.AsyncClient,
    minilm: str,
    router_dir: Path,
) -> None:
    router = await submit_router(embedded_stack, bus, registry, router_dir)
    deployment = await _deploy_router(bus, inference, router)
    assert deployment["status"] == "ready", deployment
    assert (deployment["base_model_id"], deployment["adapter_ids"]) == (router, [minilm])
    name = deployment["name"]

    _, held_out = routing_prompts.split(seed=0, held_out_per_target=10)
    decisions = []
    for row in held_out:
        response = await inference.post(f"/v1/routers/{name}/decide", json={"prompt": row["prompt"]})
        assert response.status_code == 200, response.text
        decisions.append(response.json())
    assert sum(d["winner"] == row["target"] for d, row in zip(decisions, held_out, strict=True)) >= 0.8 * len(held_out)
    first = decisions[0]
    assert first["router_artifact"] == router
    assert set(first["counts"]) == set(routing_prompts.TARGETS)
    assert first["synaptic_ops"] > 0
    assert all(d["label"] == (d["winner"] if not d["fallback"] else "chat") for d in decisions)
    assert all(d["fallback"] == (d["margin"] < 1) for d in decisions)

    models = (await inference.get("/v1/models")).json()["data"]
    assert {"id": name, "object": "model", "created": 0, "owned_by": name} in models
    itself = await inference.post(
        "/v1/chat/completions", json={"model": name, "messages": [{"role": "user", "content": "hi"}]}
    )
    assert itself.status_code == 400
    assert itself.json()["error"]["code"] == "router-not-callable-here"
    unknown = await inference.post("/v1/routers/no-such-router/decide", json={"prompt": "hi"})
    assert unknown.status_code == 404


async def test_a_revoked_router_stops_deciding_and_a_router_takes_no_adapters(
    embedded_stack: Settings,
    bus: Bus,
    registry: httpx.AsyncClient,
    inference: httpx.AsyncClient,
    router_dir: Path,
    adapters: list[str],
    minilm: str,
) -> None:
    router = await submit_router(embedded_stack, bus, registry, router_dir)
    deployment = await _deploy_router(bus, inference, router)
    assert deployment["status"] == "ready"
    await promote(registry, router, "revoked", reason="routes private prompts to a public adapter")
    view = await settled(inference, deployment["name"], ("failed",))
    assert "revoked" in view["reason"]
    refused = await inference.post(f"/v1/routers/{deployment['name']}/decide", json={"prompt": "hi"})
    assert refused.status_code == 404

    other = await submit_router(embedded_stack, bus, registry, router_dir)
    with_adapters = await _deploy_router(bus, inference, other, (adapters[0],))
    assert with_adapters["status"] == "failed"
    assert "takes no adapters" in with_adapters["reason"]
    # What a restore sends: the deployment as the registry recorded it served, its embedding model as its adapter.
    restored = await _deploy_router(bus, inference, other, (minilm,))
    assert restored["status"] == "ready", restored
