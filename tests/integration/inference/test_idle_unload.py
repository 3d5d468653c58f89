"""A base model no request uses is unloaded after `inference_idle_unload_s`, its deployments still ready; the next
request loads it again (a cold start, measured) and answers exactly as before."""

from __future__ import annotations

import asyncio

import httpx
from helpers import service_auth
from modelops_inference.app import create_app as create_inference
from modelops_shared.bus import Bus
from modelops_shared.settings import Settings
from prometheus_client.parser import text_string_to_metric_families
from servers import serving

from .support import WAIT_S, deploy, inference_settings

IDLE_S = 1.0


async def test_an_idle_base_model_is_unloaded_and_the_next_request_loads_it_again(
    embedded_stack: Settings, registry_url: str, bus: Bus, base_model: str, adapters: list[str]
) -> None:
    settings = inference_settings(embedded_stack, registry_url).model_copy(update={"inference_idle_unload_s": IDLE_S})
    app = create_inference(settings)
    async with (
        serving(app) as url,
        httpx.AsyncClient(base_url=url, timeout=60, auth=service_auth("inference")) as inference,
    ):
        deployment = await deploy(bus, inference, base_model, [adapters[0]])
        assert deployment["status"] == "ready", deployment
        body = {"model": deployment["name"], "prompt": "the cat sat on the", "max_tokens": 8, "temperature": 0}
        first = await inference.post("/v1/completions", json=body)
        assert first.status_code == 200, first.text
        engines = app.state.inference.deployments.engines
        assert deployment["base_model_id"] in engines
        before = await _metrics(inference)  # the deploy itself may have outlasted IDLE_S: counted from here

        async with asyncio.timeout(WAIT_S):
            while deployment["base_model_id"] in engines:  # idle for IDLE_S, then unloaded at the next check
                await asyncio.sleep(0.1)
        assert (await inference.get(f"/v1/deployments/{deployment['name']}")).json()["status"] == "ready"
        unloads = "modelops_inference_idle_unloads_total"
        assert _sample(await _metrics(inference), unloads) >= _sample(before, unloads) + 1

        again = await inference.post("/v1/completions", json=body)
        assert again.status_code == 200, again.text
        assert again.json()["choices"][0]["text"] == first.json()["choices"][0]["text"]  # greedy: the same answer
        assert deployment["base_model_id"] in engines
        cold_starts = "modelops_inference_cold_start_seconds_count"
        assert _sample(await _metrics(inference), cold_starts) == _sample(before, cold_starts) + 1


async def _metrics(inference: httpx.AsyncClient) -> str:
    return (await inference.get("/metrics")).text


def _sample(exposition: str, name: str) -> float:
    """The sum of `name`'s samples (this replica's only base model is the one deployed here)."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name == name
    )
