"""Quantization jobs through the gateway: what a job names checked with the registry before StartQuantization is
sent (a base model, an adapter trained on it, a LoRA export only with an adapter), roles and owners, the Q4_0 warning,
cancels, and the job's state projected from the quantizer's events. (The quantizer's side runs in
tests/integration/quantizer; the whole flow through the SDK in tests/e2e.)"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from deployables import stand_in
from helpers import TopicTap, consumed
from modelops_contracts import (
    ArtifactKind,
    CancelQuantization,
    QuantizationCompleted,
    QuantizationFormat,
    QuantizationStarted,
    QuantizedOutput,
    StartQuantization,
)
from modelops_contracts.catalog import QUANTIZATION_COMMANDS
from modelops_shared.bus import Bus
from modelops_shared.settings import Settings

from .conftest import RunningGateway
from .support import Key


@pytest.fixture(scope="module")
async def commands(embedded_stack: Settings) -> AsyncIterator[TopicTap]:
    async with TopicTap(embedded_stack, QUANTIZATION_COMMANDS) as tap:
        yield tap


@pytest.fixture(scope="module")
async def artifacts(embedded_stack: Settings, bus: Bus, registry: Any) -> dict[str, str]:
    """Two base models and an adapter of the first, registered (their files are stand-ins: nothing loads them here)."""
    base = await stand_in(embedded_stack, bus, registry, ArtifactKind.BASE_MODEL, stage=None)
    other = await stand_in(embedded_stack, bus, registry, ArtifactKind.BASE_MODEL, stage=None)
    adapter = await stand_in(embedded_stack, bus, registry, ArtifactKind.ADAPTER, base_model=base, stage=None)
    return {"base": base, "other": other, "adapter": adapter}


async def test_a_job_is_checked_then_sent_and_its_state_follows_the_quantizer_s_events(
    gateway: RunningGateway, keys: dict[str, Key], artifacts: dict[str, str], commands: TopicTap, bus: Bus
) -> None:
    body = {"model": artifacts["base"], "adapter": artifacts["adapter"], "formats": ["Q4_K_M", "LORA_F16"]}
    async with gateway.client(keys["viewer"].secret) as viewer, gateway.client(keys["developer"].secret) as dev:
        assert (await viewer.post("/v1/jobs/quantization", json=body)).status_code == 403
        accepted = await dev.post("/v1/jobs/quantization", json=body)
        assert accepted.status_code == 202, accepted.text
        job = accepted.json()
        assert job["status"] == "queued"
        assert job["warnings"] == []
        assert accepted.headers["Location"] == f"/v1/jobs/quantization/{job['id']}"
        (command,) = await commands.wait_for(job["id"], StartQuantization)
        assert (command.model, command.adapter, command.formats, command.submitted_by) == (
            artifacts["base"],
            artifacts["adapter"],
            [QuantizationFormat.Q4_K_M, QuantizationFormat.LORA_F16],
            keys["developer"].name,
        )

        outputs = [QuantizedOutput(format=QuantizationFormat.Q4_K_M, artifact_id="q-1", metrics={"size_bytes": 1.0})]
        envelopes = [
            await bus.publish(QuantizationStarted(job_id=job["id"], worker="w-1", formats=command.formats)),
            await bus.publish(QuantizationCompleted(job_id=job["id"], outputs=outputs, duration_seconds=3.0)),
        ]
        await consumed(gateway.state.runtime.pool, envelopes)
        done = (await viewer.get(f"/v1/jobs/quantization/{job['id']}")).json()
        assert (done["status"], done["worker"], done["progress"]["done"]) == ("completed", "w-1", 1)
        assert done["outputs"] == [o.model_dump(mode="json") for o in outputs]
        assert done["finished_at"] is not None

        finished = await dev.post(f"/v1/jobs/quantization/{job['id']}/cancel", json={"reason": "late"})
        assert finished.status_code == 409, finished.text


@pytest.mark.parametrize(
    ("body", "status", "slug"),
    [
        ({"model": "no-such-model", "formats": ["Q8_0"]}, 404, "artifact-not-found"),
        ({"model": "{adapter}", "formats": ["Q8_0"]}, 422, "not-a-base-model"),
        ({"model": "{other}", "adapter": "{adapter}", "formats": ["Q8_0"]}, 422, "adapter-base-mismatch"),
        ({"model": "{base}", "formats": ["LORA_F16"]}, 422, "lora-needs-adapter"),
        ({"model": "{base}", "formats": ["Q8_0", "Q8_0"]}, 422, "validation-error"),
        ({"model": "{base}", "formats": ["AWQ"]}, 422, "validation-error"),
        ({"model": "{base}", "formats": []}, 422, "validation-error"),
    ],
)
async def test_what_a_job_cannot_use_is_refused_and_nothing_is_sent(
    gateway: RunningGateway,
    keys: dict[str, Key],
    artifacts: dict[str, str],
    commands: TopicTap,
    body: dict[str, Any],
    status: int,
    slug: str,
) -> None:
    body = {name: value.format(**artifacts) if isinstance(value, str) else value for name, value in body.items()}
    before = len(commands.messages)
    async with gateway.client(keys["developer"].secret) as dev:
        refused = await dev.post("/v1/jobs/quantization", json=body)
    assert refused.status_code == status, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["type"].endswith(slug), refused.json()
    await commands.caught_up()
    assert len(commands.messages) == before


async def test_q4_0_of_a_small_model_is_accepted_with_a_warning(
    gateway: RunningGateway, keys: dict[str, Key], artifacts: dict[str, str]
) -> None:
    async with gateway.client(keys["developer"].secret) as dev:
        accepted = await dev.post("/v1/jobs/quantization", json={"model": artifacts["base"], "formats": ["Q4_0"]})
    assert accepted.status_code == 202, accepted.text
    (warning,) = accepted.json()["warnings"]
    assert "Q4_K_M" in warning


async def test_only_the_submitter_or_an_admin_cancels_and_the_cancel_is_sent_once(
    gateway: RunningGateway, keys: dict[str, Key], artifacts: dict[str, str], commands: TopicTap
) -> None:
    other = await gateway.keys.make("developer")
    async with gateway.client(keys["developer"].secret) as dev, gateway.client(other.secret) as stranger:
        job = (await dev.post("/v1/jobs/quantization", json={"model": artifacts["base"], "formats": ["Q8_0"]})).json()
        denied = await stranger.post(f"/v1/jobs/quantization/{job['id']}/cancel", json={})
        assert denied.status_code == 403, denied.text
        for _ in range(2):
            asked = await dev.post(f"/v1/jobs/quantization/{job['id']}/cancel", json={"reason": "wrong formats"})
            assert asked.status_code == 202, asked.text
        assert asked.json()["cancel_requested_by"] == keys["developer"].name
        assert (await dev.get("/v1/jobs/quantization/qjob-unknown")).status_code == 404
    (cancel,) = await commands.wait_for(job["id"], CancelQuantization)
    assert cancel.reason == "wrong formats"
    await commands.caught_up()
    assert len(commands.of(job["id"], CancelQuantization)) == 1
