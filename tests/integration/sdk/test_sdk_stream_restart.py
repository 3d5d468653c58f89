"""`jobs.stream` across a real gateway restart: the gateway serving the stream is stopped mid-stream (uvicorn shut
down, its open connections cut), events are published while nothing listens, and a new gateway (a fresh app on the
same settings and schema, as a redeploy would start) comes up on the same port; the blocking and the asyncio client
each resume with `Last-Event-ID` and see every event exactly once."""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import httpx
import pytest
from gateway.conftest import gateway_settings
from gateway.support import KeyMaker
from modelops_contracts import TrainingCompleted, TrainingProgressed, TrainingStarted
from modelops_gateway.app import create_app as create_gateway
from modelops_gateway.settings import GatewaySettings
from modelops_sdk import AsyncClient, Client
from modelops_sdk.events import JobEvent
from modelops_shared.devstack import free_port
from servers import serving

STEPS = 5


def gateway_on(settings: GatewaySettings, port: int) -> AbstractAsyncContextManager[str]:
    """A fresh gateway app on `settings`, served on `port`; leaving stops it, cutting the streams still open after a
    second's grace (as a redeploy would)."""
    return serving(create_gateway(settings), port, grace_s=1)


async def progressed(bus, job_id: str, step: int) -> None:
    await bus.publish(
        TrainingProgressed(
            job_id=job_id,
            step=step,
            total_steps=STEPS,
            loss=1.0 / step,
            learning_rate=1e-3,
            tokens_per_second=10,
            eta_seconds=STEPS - step,
        )
    )


async def until(condition, timeout_s: float = 60) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.05)


@pytest.mark.parametrize("blocking", [False, True], ids=["async", "blocking"])
async def test_a_stream_resumes_across_a_gateway_restart_without_gaps_or_duplicates(
    blocking: bool, embedded_stack, registry_url, world, tmp_path: Path
):
    settings = gateway_settings(embedded_stack, tmp_path / "gateway-state", registry_url)
    port = free_port()
    received: list[JobEvent] = []

    async with gateway_on(settings, port) as url:
        admin_key = settings.admin_key_file.read_text().strip()
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {admin_key}"}) as admin:
            key = (await KeyMaker(admin).make("developer", rate_limit="100000/minute")).secret
        async with AsyncClient(url, key) as client:
            job = await client.jobs.train(
                base_model=world.base_model_name, dataset=world.chat_dataset, hyperparameters={"max_steps": STEPS}
            )
        job_id = job.id

        if blocking:

            def follow_blocking() -> None:
                with Client(url, key) as client:
                    received.extend(client.jobs.stream(job_id))

            following = asyncio.create_task(asyncio.to_thread(follow_blocking))
        else:

            async def follow() -> None:
                async with AsyncClient(url, key) as client:
                    async for event in client.jobs.stream(job_id):
                        received.append(event)

            following = asyncio.create_task(follow())

        await world.bus.publish(TrainingStarted(job_id=job_id, worker="w", total_steps=STEPS))
        for step in (1, 2):
            await progressed(world.bus, job_id, step)
        await until(lambda: len(received) >= 4)  # queued, started, progressed ×2: the stream is live
    # The gateway is gone, its stream cut; the job goes on meanwhile.
    assert not following.done()
    for step in (3, 4):
        await progressed(world.bus, job_id, step)
    await asyncio.sleep(1)  # the client finds nobody listening and keeps trying

    async with gateway_on(settings, port):
        await progressed(world.bus, job_id, 5)
        await world.bus.publish(
            TrainingCompleted(job_id=job_id, adapter_artifact_id="art-r", steps=STEPS, duration_seconds=1)
        )
        await asyncio.wait_for(following, 90)

    assert [e.id for e in received] == list(range(1, 4 + STEPS))
    assert [e.type for e in received] == ["queued", "started", *["progressed"] * STEPS, "completed"]
    assert [e.data["step"] for e in received if e.type == "progressed"] == list(range(1, STEPS + 1))
