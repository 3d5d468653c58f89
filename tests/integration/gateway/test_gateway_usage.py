"""Usage and budgets through the gateway on the real stack: a training job's estimate (its spec × a token's cost) held
against its submitter's budget, refused past it with a 402 problem and nothing queued; usage events from the workers
priced with the price table and reported per key, job and deployment, each caller seeing their own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from helpers import consumed
from modelops_contracts import DeploymentUsageRecorded, JobStatus, JobUsageRecorded, ResourceUsage
from modelops_gateway.usage.domain import price

from .jobs_support import JobWorld
from .test_gateway_auth import assert_problem

# 20 steps × batch 4 × seq_len 64 = 5 120 tokens at the default 0.02 per million: 0.0001024 before anything is measured.
ESTIMATE = 20 * 4 * 64 * 0.02 / 1e6
USED = ResourceUsage(wall_seconds=30.0, cpu_seconds=55.0, gpu_seconds=0.0, peak_memory_bytes=2 * 1024**3, tokens=5120)


async def test_a_job_past_the_budget_left_is_refused_and_measured_usage_replaces_its_estimate(gateway, world: JobWorld):
    developer = await gateway.keys.make("developer")
    prices = gateway.settings.gateway_prices
    async with gateway.client(gateway.admin_key) as admin, gateway.client(developer.secret) as dev:
        budget = await admin.put(f"/v1/usage/budgets/{developer.name}", json={"amount": ESTIMATE * 1.5})
        assert budget.status_code == 200, budget.text
        assert budget.json()["currency"] == prices.currency

        accepted = await dev.post("/v1/jobs/training", json=world.training_request())
        assert accepted.status_code == 202, accepted.text
        job_id = accepted.json()["id"]
        jobs_before = await gateway.state.runtime.pool.fetchval("SELECT count(*) FROM jobs")
        refused = await dev.post("/v1/jobs/training", json=world.training_request())
        body = assert_problem(refused, 402, "budget-exceeded")
        assert body["estimate"] == pytest.approx(ESTIMATE)
        assert body["committed"] == pytest.approx(ESTIMATE)
        assert await gateway.state.runtime.pool.fetchval("SELECT count(*) FROM jobs") == jobs_before

        # The worker's measured use arrives with the job's end: it replaces the estimate.
        ended = await world.bus.publish(
            JobUsageRecorded(job_id=job_id, kind="training", worker="w1", status=JobStatus.COMPLETED, usage=USED)
        )
        await consumed(gateway.state.runtime.pool, [ended])
        [job] = (await dev.get("/v1/usage", params={"by": "job"})).json()["data"]
        assert (job["job_id"], job["kind"], job["key"]) == (job_id, "training", developer.name)
        assert job["cost"] == pytest.approx(price(USED, prices))
        assert job["cpu_seconds"] == 55.0
        assert job["tokens"] == 5120
        [mine] = (await dev.get("/v1/usage")).json()["data"]
        assert mine["committed"] == pytest.approx(price(USED, prices))
        assert mine["budget"] == pytest.approx(ESTIMATE * 1.5)

        # Lifted, the budget no longer refuses; someone else's usage is an admin's to read.
        assert (await admin.delete(f"/v1/usage/budgets/{developer.name}")).status_code == 204
        assert (await dev.post("/v1/jobs/training", json=world.training_request())).status_code == 202
        assert_problem(await dev.get("/v1/usage", params={"key": "someone-else"}), 403, "not-the-owner")
        assert_problem(await admin.delete(f"/v1/usage/budgets/{developer.name}"), 404, "budget-not-found")
        everyone = (await admin.get("/v1/usage", params={"by": "key"})).json()["data"]
        assert developer.name in {row["key"] for row in everyone}


async def test_a_deployment_s_usage_is_charged_to_who_deployed_it(gateway, world: JobWorld):
    await gateway.state.runtime.pool.execute(
        "INSERT INTO deployments (name, base_model, adapters, requested_by) VALUES ('usage-dep', 'm', '[]', $1)",
        world.developer.name,
    )
    end = datetime.now(UTC)
    periods = [
        DeploymentUsageRecorded(
            deployment="usage-dep",
            replica=replica,
            period_start=end - timedelta(seconds=60),
            period_end=end,
            requests=3,
            prompt_tokens=30,
            completion_tokens=90,
            usage=ResourceUsage(wall_seconds=60, cpu_seconds=12, peak_memory_bytes=1024**3, tokens=120),
        )
        for replica in ("replica-a", "replica-b")
    ]
    envelopes = [await world.bus.publish(period) for period in periods]
    await consumed(gateway.state.runtime.pool, envelopes)
    async with gateway.client(world.developer.secret) as dev:
        rows = (await dev.get("/v1/usage", params={"by": "deployment"})).json()["data"]
    [row] = [r for r in rows if r["deployment"] == "usage-dep"]
    assert (row["key"], row["requests"], row["tokens"], row["cpu_seconds"]) == (world.developer.name, 6, 240, 24.0)
    assert row["peak_memory_bytes"] == 1024**3
