"""Routers through the gateway: a router deployment takes a route for each of its targets (and nothing else); a chat
completion addressed to it is decided by the inference service (a stand-in here), recorded on router.events.v1, and
answered by the target deployment (or a RAG collection, as the caller) with the target named in headers and usage;
decisions become statistics, and their requesters' corrections become training rows."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from deployables import promote, stand_in
from helpers import submit_router
from modelops_contracts import ArtifactKind
from modelops_shared.bus import Bus
from modelops_shared.settings import Settings

from .conftest import RunningGateway
from .inference_support import FakeInference, fake_inference
from .support import WAIT_S, Key

ROUTES = {
    "chat": {"deployment": "smol-base"},
    "docs": {"deployment": "smol-base", "collection": "no-such-collection"},
    "record": {"deployment": "smol-record"},
    "sql": {"deployment": "smol-sql"},
}


@pytest.fixture
async def fake(gateway: RunningGateway) -> AsyncIterator[FakeInference]:
    async with fake_inference(gateway.inference) as fake:
        yield fake


@pytest.fixture(scope="module")
async def router(embedded_stack: Settings, bus: Bus, registry: httpx.AsyncClient, router_dir: Path) -> str:
    """A registered router in staging (its held-out accuracy passes the policy)."""
    artifact = await submit_router(embedded_stack, bus, registry, router_dir)
    await promote(registry, artifact)
    return artifact


@pytest.fixture(scope="module")
async def deployed(gateway: RunningGateway, keys: dict[str, Key], router: str) -> str:
    """The router deployed by the module's developer; its name."""
    name = f"router-{uuid.uuid4().hex[:8]}"
    async with gateway.client(keys["developer"].secret) as dev:
        accepted = await dev.post("/v1/deployments", json={"name": name, "base_model": router, "routes": ROUTES})
    assert accepted.status_code == 202, accepted.text
    return name


def decision(router: str, label: str, *, margin: int = 4, fallback: bool = False) -> dict[str, Any]:
    counts = {target: 0 for target in ROUTES} | {label: margin}
    return {
        "label": label,
        "winner": label,
        "margin": margin,
        "fallback": fallback,
        "counts": counts,
        "synaptic_ops": 1234,
        "router_artifact": router,
    }


def chat(model: str, prompt: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": 4, **extra}


async def test_a_router_takes_one_route_per_target_and_nothing_else(
    gateway: RunningGateway, keys: dict[str, Key], router: str, fake: FakeInference, deployed: str
) -> None:
    async with gateway.client(keys["developer"].secret) as dev:
        partial = await dev.post(
            "/v1/deployments", json={"name": "r-partial", "base_model": router, "routes": {"sql": ROUTES["sql"]}}
        )
        assert partial.status_code == 422, partial.text
        assert partial.json()["type"].endswith("/routes-mismatch")
        assert partial.json()["targets"] == sorted(ROUTES)
        adapters = {"name": "r-adapters", "base_model": router, "adapters": ["x"], "routes": ROUTES}
        assert (await dev.post("/v1/deployments", json=adapters)).json()["type"].endswith("/router-with-adapters")
        bad_name = {"name": "r-bad", "base_model": router, "routes": {**ROUTES, "sql": {"deployment": "No Such"}}}
        assert (await dev.post("/v1/deployments", json=bad_name)).status_code == 422
        shown = (await dev.get(f"/v1/deployments/{deployed}")).json()
    assert (shown["status"], shown["routes"]["docs"]) == ("queued", ROUTES["docs"])


async def test_a_model_that_is_not_a_router_takes_no_routes(
    gateway: RunningGateway, keys: dict[str, Key], embedded_stack: Settings, bus: Bus, registry: httpx.AsyncClient
) -> None:
    base = await stand_in(embedded_stack, bus, registry, ArtifactKind.BASE_MODEL)
    async with gateway.client(keys["developer"].secret) as dev:
        refused = await dev.post("/v1/deployments", json={"name": "r-none", "base_model": base, "routes": ROUTES})
    assert refused.status_code == 422
    assert refused.json()["type"].endswith("/routes-without-router")


async def test_a_chat_completion_goes_where_the_router_decides_and_says_so(
    gateway: RunningGateway, keys: dict[str, Key], router: str, fake: FakeInference, deployed: str
) -> None:
    fake.decisions[deployed] = decision(router, "sql")
    async with gateway.client(keys["viewer"].secret) as viewer:
        answered = await viewer.post("/v1/chat/completions", json=chat(deployed, "Count the orders per city in SQL."))
        streamed = await viewer.post("/v1/chat/completions", json=chat(deployed, "And per day?", stream=True))
        legacy = await viewer.post("/v1/completions", json={"model": deployed, "prompt": "x"})
    assert answered.status_code == 200, answered.text
    assert (answered.headers["X-ModelOps-Route"], answered.headers["X-ModelOps-Route-Deployment"]) == (
        "sql",
        "smol-sql",
    )
    body = answered.json()
    assert body["model"] == deployed
    route = body["usage"]["route"]
    assert (route["target"], route["deployment"], route["margin"], route["fallback"]) == ("sql", "smol-sql", 4, False)
    assert route["decision_id"] == answered.headers["X-ModelOps-Route-Decision"]
    decide_path, decide_body, _ = fake.received[0]
    assert (decide_path, decide_body) == (
        f"/v1/routers/{deployed}/decide",
        {"prompt": "Count the orders per city in SQL."},
    )
    relayed = [body for path, body, _ in fake.received if path == "/v1/chat/completions"]
    assert [b["model"] for b in relayed] == ["smol-sql", "smol-sql"]
    assert streamed.headers["X-ModelOps-Route"] == "sql"
    assert "llo" in streamed.text
    assert legacy.status_code == 400
    assert legacy.json()["error"]["code"] == "router-chat-only"


async def test_a_collection_target_is_asked_as_the_caller_through_the_rag_service(
    gateway: RunningGateway, keys: dict[str, Key], router: str, fake: FakeInference, deployed: str
) -> None:
    fake.decisions[deployed] = decision(router, "docs")
    async with gateway.client(keys["viewer"].secret) as viewer:
        answered = await viewer.post("/v1/chat/completions", json=chat(deployed, "What does a with statement do?"))
    # The rag service answered for the caller (not a 403 for the gateway itself): the collection does not exist.
    assert answered.status_code == 404, answered.text
    assert answered.headers["X-ModelOps-Route-Collection"] == "no-such-collection"


async def test_decisions_count_and_their_requesters_correct_them_into_training_rows(
    gateway: RunningGateway, keys: dict[str, Key], router: str, fake: FakeInference, deployed: str
) -> None:
    other = await gateway.keys.make("developer")
    prompt = f"Write SQL for the invoices of {uuid.uuid4().hex}."
    fake.decisions[deployed] = decision(router, "record", margin=0, fallback=False)
    async with gateway.client(keys["developer"].secret) as dev, gateway.client(other.secret) as stranger:
        answered = await dev.post("/v1/chat/completions", json=chat(deployed, prompt))
        decision_id = answered.headers["X-ModelOps-Route-Decision"]
        path = f"/v1/routers/{deployed}/decisions/{decision_id}/corrections"
        stats = await _stats_counting(dev, deployed, "record")
        assert stats["by_target"]["record"] == 1  # this test's decision: no other goes there

        not_theirs = await stranger.post(path, json={"prompt": prompt, "target": "sql"})
        assert not_theirs.status_code == 404
        mismatch = await dev.post(path, json={"prompt": prompt + " ", "target": "sql"})
        assert mismatch.json()["type"].endswith("/prompt-mismatch")
        unknown = await dev.post(path, json={"prompt": prompt, "target": "poetry"})
        assert unknown.json()["type"].endswith("/unknown-target")
        corrected = await dev.post(path, json={"prompt": prompt, "target": "sql"})
        assert corrected.status_code == 202, corrected.text

        feedback = f"/v1/routers/{deployed}/feedback"
        async with asyncio.timeout(WAIT_S):
            while {"prompt": prompt, "target": "sql"} not in (await dev.get(feedback)).json():
                await asyncio.sleep(0.1)
        assert (await stranger.get(feedback)).status_code == 403
        assert (await dev.get(f"/v1/routers/{deployed}/stats")).json()["corrected"] >= 1


async def _stats_counting(client: httpx.AsyncClient, router: str, target: str) -> dict[str, Any]:
    """The router's statistics once they count a decision for `target` (they are projected from the topic)."""
    async with asyncio.timeout(WAIT_S):
        while target not in (stats := (await client.get(f"/v1/routers/{router}/stats")).json())["by_target"]:
            await asyncio.sleep(0.1)
    return stats
