"""Evaluation jobs through the gateway: what a job names checked before StartEvaluation is sent (a model, an adapter
trained on it, a ready deployment and the adapter it serves, a suite of sft or chat rows at an exact version), roles
and owners, cancels, and the job's state projected from the evaluator's events. (The evaluator's side runs in
tests/integration/evaluator; the whole flow through the SDK in tests/e2e.)"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from deployables import stand_in
from helpers import TopicTap, consumed, create_dataset
from modelops_contracts import (
    ArtifactKind,
    CancelEvaluation,
    DatasetSchema,
    EvaluationCompleted,
    EvaluationStarted,
    MetricSpec,
    StartEvaluation,
)
from modelops_contracts.catalog import EVALUATION_COMMANDS
from modelops_shared.bus import Bus
from modelops_shared.settings import Settings

from .conftest import RunningGateway
from .inference_support import fake_inference
from .support import Key

SFT_ROWS = [{"prompt": "2+2=", "completion": "4"}, {"prompt": "3+3=", "completion": "6"}]
PREFERENCE_ROWS = [{"prompt": "Hi", "chosen": "Hello!", "rejected": "Go away."}]


@pytest.fixture(scope="module")
async def commands(embedded_stack: Settings) -> AsyncIterator[TopicTap]:
    async with TopicTap(embedded_stack, EVALUATION_COMMANDS) as tap:
        yield tap


@pytest.fixture(scope="module")
async def named(embedded_stack: Settings, bus: Bus, registry: Any) -> dict[str, str]:
    """Two base models, an adapter of the first, a suite and a preference dataset, registered (the models' files are
    stand-ins: nothing loads them here)."""
    base = await stand_in(embedded_stack, bus, registry, ArtifactKind.BASE_MODEL, stage=None)
    other = await stand_in(embedded_stack, bus, registry, ArtifactKind.BASE_MODEL, stage=None)
    adapter = await stand_in(embedded_stack, bus, registry, ArtifactKind.ADAPTER, base_model=base, stage=None)
    suite, _ = await create_dataset(embedded_stack, bus, registry, SFT_ROWS, DatasetSchema.SFT)
    preference, _ = await create_dataset(embedded_stack, bus, registry, PREFERENCE_ROWS, DatasetSchema.PREFERENCE)
    return {"base": base, "other": other, "adapter": adapter, "suite": suite, "preference": preference}


async def test_a_job_is_checked_then_sent_and_its_state_follows_the_evaluator_s_events(
    gateway: RunningGateway, keys: dict[str, Key], named: dict[str, str], commands: TopicTap, bus: Bus
) -> None:
    body = {
        "model": named["base"],
        "adapter": named["adapter"],
        "suite": named["suite"],
        "metrics": ["exact_match", {"name": "regex_match", "params": {"pattern": "\\d+"}}],
        "seed": 3,
    }
    async with gateway.client(keys["viewer"].secret) as viewer, gateway.client(keys["developer"].secret) as dev:
        assert (await viewer.post("/v1/jobs/evaluation", json=body)).status_code == 403
        accepted = await dev.post("/v1/jobs/evaluation", json=body)
        assert accepted.status_code == 202, accepted.text
        job = accepted.json()
        assert (job["status"], job["suite"], job["suite_version"]) == ("queued", named["suite"], 0)
        assert accepted.headers["Location"] == f"/v1/jobs/evaluation/{job['id']}"
        (command,) = await commands.wait_for(job["id"], StartEvaluation)
        assert (command.model, command.adapter, command.deployment, command.seed) == (
            named["base"],
            named["adapter"],
            None,
            3,
        )
        assert command.metrics == [
            MetricSpec(name="exact_match"),
            MetricSpec(name="regex_match", params={"pattern": "\\d+"}),
        ]

        totals = {"exact_match": 0.5, "regex_match": 1.0, "items": 2.0}
        envelopes = [
            await bus.publish(EvaluationStarted(job_id=job["id"], worker="w-1", items=2)),
            await bus.publish(
                EvaluationCompleted(job_id=job["id"], report_id="r-1", metrics=totals, items=2, duration_seconds=1.0)
            ),
        ]
        await consumed(gateway.state.runtime.pool, envelopes)
        done = (await viewer.get(f"/v1/jobs/evaluation/{job['id']}")).json()
        assert (done["status"], done["worker"], done["progress"]) == ("completed", "w-1", {"done": 2, "total": 2})
        assert (done["report_id"], done["metrics"]) == ("r-1", totals)

        finished = await dev.post(f"/v1/jobs/evaluation/{job['id']}/cancel", json={"reason": "late"})
        assert finished.status_code == 409, finished.text


async def test_a_deployment_is_evaluated_through_the_model_name_that_reaches_what_it_serves(
    gateway: RunningGateway, keys: dict[str, Key], named: dict[str, str], commands: TopicTap, registry: Any
) -> None:
    adapter_name = (await registry.get(f"/v1/artifacts/{named['adapter']}")).json()["name"]
    served = {
        "name": "support-bot",
        "status": "ready",
        "base_model": "b",
        "base_model_id": named["base"],
        "adapters": [adapter_name],
        "adapter_ids": [named["adapter"]],
        "models": ["support-bot", f"support-bot/{adapter_name}"],
    }
    async with fake_inference(gateway.inference) as inference, gateway.client(keys["developer"].secret) as dev:
        inference.known = {"support-bot": served, "warming": {**served, "name": "warming", "status": "loading"}}
        by_name = await dev.post(
            "/v1/jobs/evaluation", json={"deployment": "support-bot", "suite": named["suite"], "metrics": ["rouge_l"]}
        )
        by_adapter = await dev.post(
            "/v1/jobs/evaluation",
            json={
                "deployment": "support-bot",
                "adapter": named["adapter"],
                "suite": named["suite"],
                "metrics": ["rouge_l"],
            },
        )
        loading = await dev.post(
            "/v1/jobs/evaluation", json={"deployment": "warming", "suite": named["suite"], "metrics": ["rouge_l"]}
        )
        missing = await dev.post(
            "/v1/jobs/evaluation", json={"deployment": "nobody", "suite": named["suite"], "metrics": ["rouge_l"]}
        )
    assert by_name.status_code == by_adapter.status_code == 202, (by_name.text, by_adapter.text)
    (first,) = await commands.wait_for(by_name.json()["id"], StartEvaluation)
    (second,) = await commands.wait_for(by_adapter.json()["id"], StartEvaluation)
    assert (first.deployment, first.served_model, first.model, first.adapter) == (
        "support-bot",
        "support-bot",
        named["base"],
        named["adapter"],
    )
    assert second.served_model == f"support-bot/{adapter_name}"
    assert (loading.status_code, loading.json()["type"].rsplit("/", 1)[1]) == (422, "deployment-not-ready")
    assert (missing.status_code, missing.json()["type"].rsplit("/", 1)[1]) == (404, "deployment-not-found")


@pytest.mark.parametrize(
    ("body", "status", "slug"),
    [
        ({"model": "no-such-model", "suite": "{suite}"}, 404, "artifact-not-found"),
        ({"model": "{adapter}", "suite": "{suite}"}, 422, "not-a-base-model"),
        ({"model": "{other}", "adapter": "{adapter}", "suite": "{suite}"}, 422, "adapter-base-mismatch"),
        ({"model": "{base}", "suite": "no-such-suite"}, 404, "dataset-not-found"),
        ({"model": "{base}", "suite": "{suite}", "suite_version": 7}, 404, "dataset-version-not-found"),
        ({"model": "{base}", "suite": "{preference}"}, 422, "dataset-schema-mismatch"),
        ({"suite": "{suite}"}, 422, "validation-error"),
        ({"model": "{base}", "deployment": "d", "suite": "{suite}"}, 422, "validation-error"),
        ({"model": "{base}", "suite": "{suite}", "metrics": ["rouge_l", "rouge_l"]}, 422, "validation-error"),
        ({"model": "{base}", "suite": "{suite}", "metrics": []}, 422, "validation-error"),
        ({"model": "{base}", "suite": "{suite}", "metrics": ["Not A Name"]}, 422, "validation-error"),
    ],
)
async def test_what_a_job_cannot_use_is_refused_and_nothing_is_sent(
    gateway: RunningGateway,
    keys: dict[str, Key],
    named: dict[str, str],
    commands: TopicTap,
    body: dict[str, Any],
    status: int,
    slug: str,
) -> None:
    body = {"metrics": ["exact_match"], **body}
    body = {name: value.format(**named) if isinstance(value, str) else value for name, value in body.items()}
    before = len(commands.messages)
    async with gateway.client(keys["developer"].secret) as dev:
        refused = await dev.post("/v1/jobs/evaluation", json=body)
    assert refused.status_code == status, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["type"].endswith(slug), refused.json()
    await commands.caught_up()
    assert len(commands.messages) == before


async def test_only_the_submitter_or_an_admin_cancels(
    gateway: RunningGateway, keys: dict[str, Key], named: dict[str, str], commands: TopicTap
) -> None:
    body = {"model": named["base"], "suite": named["suite"], "metrics": ["exact_match"]}
    stranger = await gateway.keys.make("developer")
    async with gateway.client(keys["developer"].secret) as dev, gateway.client(stranger.secret) as other:
        job = (await dev.post("/v1/jobs/evaluation", json=body)).json()
        assert (await other.post(f"/v1/jobs/evaluation/{job['id']}/cancel", json={})).status_code == 403
        cancelled = await dev.post(f"/v1/jobs/evaluation/{job['id']}/cancel", json={"reason": "wrong suite"})
        assert cancelled.status_code == 202, cancelled.text
        assert cancelled.json()["cancel_requested_by"] == keys["developer"].name
    (cancel,) = await commands.wait_for(job["id"], CancelEvaluation)
    assert cancel.reason == "wrong suite"
