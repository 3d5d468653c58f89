"""Deployments survive a restart: a new inference process on the same stack re-deploys, from the registry, what is
still wanted (verified again, announced again) and answers as before; what was undeployed stays gone."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import httpx
from helpers import service_auth
from modelops_contracts import Undeploy
from modelops_inference.app import create_app as create_inference
from modelops_shared.bus import Bus
from modelops_shared.settings import Settings
from servers import serving

from .support import WAIT_S, deploy, inference_settings

PROMPT = "the cat sat on the"


async def _greedy(client: httpx.AsyncClient, model: str) -> str:
    response = await client.post(
        "/v1/completions", json={"model": model, "prompt": PROMPT, "max_tokens": 8, "temperature": 0}
    )
    assert response.status_code == 200, response.text
    return str(response.json()["choices"][0]["text"])


async def _registry_rows(registry: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    response = await registry.get("/v1/deployments")
    assert response.status_code == 200, response.text
    return {row["name"]: row for row in response.json()}


async def test_deployments_survive_a_restart(
    embedded_stack: Settings,
    registry_url: str,
    registry: httpx.AsyncClient,
    bus: Bus,
    base_model: str,
    adapters: list[str],
) -> None:
    settings = inference_settings(embedded_stack, registry_url)
    async with (
        serving(create_inference(settings)) as url,
        httpx.AsyncClient(base_url=url, timeout=60, auth=service_auth("inference")) as first,
    ):
        kept = await deploy(bus, first, base_model, [adapters[0]])
        gone = await deploy(bus, first, base_model, [adapters[1]])
        assert (kept["status"], gone["status"]) == ("ready", "ready"), (kept, gone)
        before = await _greedy(first, kept["name"])
        await bus.publish(Undeploy(name=gone["name"], requested_by="alice"))
        async with asyncio.timeout(WAIT_S):
            while True:
                rows = await _registry_rows(registry)
                if (
                    rows.get(kept["name"], {}).get("status") == "ready"
                    and rows.get(gone["name"], {}).get("status") == "removed"
                ):
                    break
                await asyncio.sleep(0.1)
        ready_at = datetime.fromisoformat(rows[kept["name"]]["updated_at"])

    wanted = {row["name"] for row in (await registry.get("/v1/deployments", params={"wanted": "true"})).json()}
    assert kept["name"] in wanted
    assert gone["name"] not in wanted

    # The same replica (schema, consumer groups) starts again: its consumers have nothing new to read.
    async with (
        serving(create_inference(settings)) as url,
        httpx.AsyncClient(base_url=url, timeout=60, auth=service_auth("inference")) as second,
    ):
        async with asyncio.timeout(WAIT_S):
            while True:
                response = await second.get(f"/v1/deployments/{kept['name']}")
                if response.status_code == 200 and response.json()["status"] in ("ready", "failed"):
                    break
                await asyncio.sleep(0.1)
        restored = response.json()
        assert restored["status"] == "ready", restored
        assert restored["adapter_ids"] == kept["adapter_ids"]
        assert await _greedy(second, kept["name"]) == before
        assert (await second.get(f"/v1/deployments/{gone['name']}")).status_code == 404
        models = {m["id"] for m in (await second.get("/v1/models")).json()["data"]}
        assert kept["name"] in models
        assert gone["name"] not in models
        # Announced as any deployment: the registry projects a fresh DeploymentReady.
        async with asyncio.timeout(WAIT_S):
            while datetime.fromisoformat((await _registry_rows(registry))[kept["name"]]["updated_at"]) <= ready_at:
                await asyncio.sleep(0.1)
