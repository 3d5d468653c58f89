"""Evaluation through a deployment: the evaluator asks the inference service's OpenAI API (its own service token),
with requests in flight together; answers for every suite, and log-likelihoods (multiple choice, perplexity) through
`echo` with `logprobs` — the same figures as the evaluator's own run of the model."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from helpers import TopicTap, create_dataset, service_auth
from inference.support import deploy, inference_settings
from modelops_contracts import DatasetSchema, MetricSpec
from modelops_evaluator.app import create_app
from modelops_evaluator.settings import EvaluatorSettings
from modelops_inference.app import create_app as create_inference
from modelops_shared.bus import Bus
from modelops_shared.settings import Settings
from servers import serving

from .test_evaluator_jobs import CAPITALS, evaluated, job


@pytest.fixture(scope="module")
async def inference(embedded_stack: Settings, registry_url: str) -> AsyncIterator[tuple[str, httpx.AsyncClient]]:
    """An inference replica serving on a real port, and a client of it."""
    settings = inference_settings(embedded_stack, registry_url)
    async with (
        serving(create_inference(settings)) as url,
        httpx.AsyncClient(base_url=url, timeout=60, auth=service_auth("inference")) as client,
    ):
        yield url, client


@pytest.fixture
async def evaluator_of_deployments(
    evaluator_settings: EvaluatorSettings, inference: tuple[str, httpx.AsyncClient]
) -> AsyncIterator[None]:
    app = create_app(evaluator_settings.model_copy(update={"inference_url": inference[0]}))
    async with app.router.lifespan_context(app):
        yield


@pytest.fixture(scope="module")
async def choices(embedded_stack: Settings, bus: Bus, registry) -> tuple[str, int]:
    cities = [capital for _, capital in CAPITALS]
    rows = [
        {
            "prompt": f"The capital of {country} is",
            "choices": [*[c for c in cities if c != capital][:2], capital],
            "answer": 2,
        }
        for country, capital in CAPITALS
    ]
    return await create_dataset(embedded_stack, bus, registry, rows, DatasetSchema.MULTIPLE_CHOICE)


async def test_a_deployment_is_scored_like_the_model_it_serves(
    evaluator_of_deployments,
    inference: tuple[str, httpx.AsyncClient],
    smollm2_base_model: str,
    choices: tuple[str, int],
    bus: Bus,
    events: TopicTap,
):
    served = await deploy(bus, inference[1], smollm2_base_model, [])
    assert served["status"] == "ready", served
    metrics = [MetricSpec(name="multiple_choice"), MetricSpec(name="perplexity"), MetricSpec(name="rouge_l")]
    remote = await evaluated(
        bus,
        events,
        job(smollm2_base_model, choices, metrics, deployment=served["name"], served_model=served["name"]),
    )
    local = await evaluated(bus, events, job(smollm2_base_model, choices, metrics))
    assert remote.metrics["multiple_choice"] == local.metrics["multiple_choice"] >= 0.8, (remote, local)
    # The local run puts BOS before a prompt as the trainer does; the API takes the prompt as sent.
    assert remote.metrics["perplexity"] == pytest.approx(local.metrics["perplexity"], rel=0.1)
    assert remote.metrics["rouge_l"] > 0
