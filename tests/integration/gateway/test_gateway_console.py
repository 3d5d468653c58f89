"""The console's API on a real gateway and broker: the recorder indexes what is published, jobs are listed with the
status their events leave them in, a job's flow is its messages in order with the gaps between them and the trace
its command carries; topics, groups and messages as the broker has them, payloads and dead letters for admins only.
(The pages themselves run in a browser in tests/e2e/test_console.py.)"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from modelops_contracts import TrainingCompleted, TrainingStarted
from opentelemetry import propagate, trace

from .conftest import RunningGateway
from .inference_support import fake_inference
from .jobs_support import JobWorld
from .support import WAIT_S


async def test_a_job_is_listed_with_its_status_and_its_flow_follows_its_messages_in_order(
    gateway: RunningGateway, world: JobWorld
) -> None:
    async with gateway.client(world.developer.secret) as dev, gateway.client(world.viewer.secret) as viewer:
        accepted = await dev.post("/v1/jobs/training", json=world.training_request())
        assert accepted.status_code == 202, accepted.text
        job_id = accepted.json()["id"]
        queued = await _job(viewer, job_id, "queued")
        assert queued["kind"] == "training"
        assert queued["service"] == "gateway"
        # A trainer's events, published in the trace its command carries (as the job consumer continues it).
        command_trace = propagate.extract({"traceparent": f"00-{queued['trace_id']}-{'1' * 16}-01"})
        with trace.get_tracer(__name__).start_as_current_span("train", context=command_trace):
            started = TrainingStarted(job_id=job_id, worker="w-1", total_steps=20)
            await world.bus.publish(started, correlation_id=job_id)
            completed = TrainingCompleted(job_id=job_id, adapter_artifact_id="a-1", steps=20, duration_seconds=1.0)
            await world.bus.publish(completed, correlation_id=job_id)
        done = await _job(viewer, job_id, "completed")
        assert done["last_event"] == TrainingCompleted.type

        flow = (await viewer.get(f"/v1/console/flows/{job_id}")).json()
        assert [hop["type"] for hop in flow["hops"]] == [
            "modelops.training.start.v1",
            TrainingStarted.type,
            TrainingCompleted.type,
        ]
        start = flow["hops"][0]
        assert (start["topic"], start["service"]) == ("training.commands.v1", "gateway")
        assert start["correlation_id"] == job_id
        assert start["gap_s"] is None
        assert all(hop["gap_s"] >= 0 for hop in flow["hops"][1:])
        assert flow["trace_ids"] == [queued["trace_id"]]  # the POST's trace, carried by the command and the events
        assert flow["trace_url"] is None  # no Jaeger set up here

        unknown = await viewer.get("/v1/console/flows/no-such-job")
        assert unknown.status_code == 404
        assert unknown.json()["type"].endswith("/flow-not-found")
        assert (await viewer.get("/v1/console/jobs", params={"kind": "nonsense"})).status_code == 422


async def test_topics_and_groups_are_read_from_the_broker_and_payloads_are_for_admins_only(
    gateway: RunningGateway, world: JobWorld
) -> None:
    admin = gateway.client(gateway.admin_key)
    async with admin, gateway.client(world.viewer.secret) as viewer:
        me = (await viewer.get("/v1/api-keys/me")).json()
        assert (me["name"], me["role"]) == (world.viewer.name, "viewer")

        topics = {topic["name"]: topic for topic in (await viewer.get("/v1/console/topics")).json()}
        commands = topics["training.commands.v1"]
        assert len(commands["partitions"]) == 6
        assert commands["messages"] == sum(p["latest"] - p["earliest"] for p in commands["partitions"]) > 0
        assert (commands["producers"], commands["consumers"]) == (["gateway"], ["trainer", "registry"])
        assert topics["training.commands.v1.dlq"]["dead_letter_topic"]

        groups = {group["group"]: group for group in (await viewer.get("/v1/console/groups")).json()}
        projection = groups[gateway.settings.gateway_schema]  # the gateway's own projection of training events
        assert {p["topic"] for p in projection["partitions"]} == {"training.events.v1"}
        assert projection["lag"] == sum(p["lag"] for p in projection["partitions"])

        assert (await viewer.get("/v1/console/topics/training.commands.v1/messages")).status_code == 403
        assert (await viewer.get("/v1/console/dead-letters")).status_code == 403
        replay = {"topic": "training.events.v1", "dry_run": True}
        assert (await viewer.post("/v1/console/dead-letters/replay", json=replay)).status_code == 403

        latest = (await admin.get("/v1/console/topics/training.commands.v1/messages", params={"limit": 3})).json()
        assert 0 < len(latest) <= 3
        assert latest == sorted(latest, key=lambda m: m["timestamp"], reverse=True)
        assert latest[0]["headers"]["ce_type"] == "modelops.training.start.v1"
        assert latest[0]["payload"]["job_id"] == latest[0]["key"]
        unknown = await admin.get("/v1/console/topics/not.a.topic/messages")
        assert unknown.status_code == 404
        assert unknown.json()["type"].endswith("/topic-not-found")
        assert (await admin.get("/v1/console/topics/training.commands.v1/messages?partition=6")).status_code == 404
        assert (await admin.post("/v1/console/dead-letters/replay", json=replay)).status_code == 200


async def test_an_artifacts_signature_is_verified_against_the_registry_key_that_signed_it(
    gateway: RunningGateway, world: JobWorld
) -> None:
    async with gateway.client(world.viewer.secret) as viewer:
        state = (await viewer.get(f"/v1/console/artifacts/{world.base_model_id}/signature")).json()
        assert state["status"] == "verified", state
        assert state["files"] >= 1
        assert (await viewer.get("/v1/console/artifacts/no-such-artifact/signature")).status_code == 404


async def _job(client: httpx.AsyncClient, job_id: str, status: str) -> dict[str, Any]:
    """The console's summary of the job once the recorder has indexed it in `status`."""
    async with asyncio.timeout(WAIT_S):
        while True:
            jobs = (await client.get("/v1/console/jobs", params={"kind": "training", "limit": 200})).json()
            found = next((job for job in jobs if job["id"] == job_id), None)
            if found and found["status"] == status:
                return found
            await asyncio.sleep(0.1)


async def test_a_deployments_serving_figures_come_from_the_inference_services_metrics(
    gateway: RunningGateway, world: JobWorld
) -> None:
    async with fake_inference(gateway.inference) as inference, gateway.client(world.viewer.secret) as viewer:
        inference.known["chat"] = {"name": "chat", "status": "ready", "base_model": "b", "adapters": [], "models": []}
        serving = (await viewer.get("/v1/console/deployments/chat/serving")).json()
        assert serving == {
            "deployment": "chat",
            "models": [
                {
                    "model": "chat",
                    "requests": {"ok": 1},
                    "prompt_tokens": 0,
                    "completion_tokens": 0,
                    "time_to_first_token": {"count": 0, "mean_s": None, "p50_s": None, "p95_s": None},
                    "inter_token_latency": {"count": 0, "mean_s": None, "p50_s": None, "p95_s": None},
                }
            ],
        }
        unknown = await viewer.get("/v1/console/deployments/not-deployed/serving")
        assert unknown.status_code == 404
        assert unknown.json()["type"].endswith("/deployment-not-found")
