"""Training jobs through the gateway on the real stack: submission (checked with the real registry, sent through the
outbox), refusals that queue nothing, idempotent replays, the job following its trainer's events, and cancels."""

from __future__ import annotations

import asyncio
import uuid

from helpers import consumed, registered
from modelops_contracts import (
    CancelTraining,
    StartTraining,
    TrainingCancelled,
    TrainingCheckpointed,
    TrainingCompleted,
    TrainingFailed,
    TrainingProgressed,
    TrainingStarted,
    encode,
)
from modelops_contracts.catalog import TRAINING_EVENTS

from .conftest import RunningGateway
from .jobs_support import JobWorld, job_when
from .support import Key, import_artifact, sample_files
from .test_gateway_auth import assert_problem


async def _submit(gateway, world: JobWorld, **overrides) -> str:
    async with gateway.client(world.developer.secret) as dev:
        accepted = await dev.post("/v1/jobs/training", json=world.training_request(**overrides))
    assert accepted.status_code == 202, accepted.text
    return accepted.json()["id"]


async def _row_counts(gateway) -> tuple[int, int]:
    pool = gateway.state.runtime.pool
    return await pool.fetchval("SELECT count(*) FROM jobs"), await pool.fetchval("SELECT count(*) FROM outbox")


async def test_a_job_is_queued_and_its_command_carries_the_exact_spec(gateway, world):
    request = world.training_request(suffix="arith", plugins={"metrics": ["exact_match"]})
    async with gateway.client(world.developer.secret) as dev:
        accepted = await dev.post("/v1/jobs/training", json=request)
        assert accepted.status_code == 202, accepted.text
        job_id = accepted.json()["id"]
        assert accepted.json() == {"id": job_id, "status": "queued"}
        assert accepted.headers["Location"] == f"/v1/jobs/{job_id}"

    [command] = await world.commands.wait_for(job_id, StartTraining)
    # The base model was named by name; the command pins the artifact, and the latest dataset version (1).
    assert command.base_model == world.base_model_id
    assert (command.dataset, command.dataset_version) == (world.chat_dataset, 1)
    assert command.submitted_by == world.developer.name
    assert command.adapter.target_modules == ["q_proj", "v_proj"]
    assert command.hyperparameters.max_steps == 20
    assert (command.eval_split, command.suffix, command.plugins.metrics) == (0.2, "arith", ["exact_match"])

    async with gateway.client(world.viewer.secret) as view:
        job = (await view.get(f"/v1/jobs/{job_id}")).json()
        assert job["status"] == "queued"
        assert (job["base_model"], job["base_model_id"]) == (world.base_model_name, world.base_model_id)
        assert (job["dataset_version"], job["dataset_id"]) == (1, f"dataset-{world.chat_dataset}-v1")
        assert job["spec"] == command.model_dump(mode="json")
        assert job["progress"] == {"step": None, "total_steps": None}
        queued = (await view.get("/v1/jobs", params={"status": "queued", "kind": "training"})).json()
        assert job_id in [j["id"] for j in queued["data"]]


async def test_a_dataset_version_and_a_base_model_id_are_taken_as_given(gateway, world):
    job_id = await _submit(gateway, world, base_model=world.base_model_id, dataset_version=0)
    [command] = await world.commands.wait_for(job_id, StartTraining)
    assert (command.base_model, command.dataset_version) == (world.base_model_id, 0)


async def test_unknown_references_are_refused_before_anything_is_queued(gateway, world):
    marker = f"never-{uuid.uuid4().hex[:8]}"
    before = await _row_counts(gateway)
    async with gateway.client(world.developer.secret) as dev:
        cases = [
            ({"base_model": "no-such-model"}, 404, "base-model-not-found"),
            ({"base_model": "art-0000000000"}, 404, "base-model-not-found"),
            ({"dataset": "no-such-dataset"}, 404, "dataset-not-found"),
            ({"dataset_version": 7}, 404, "dataset-version-not-found"),
            ({"base_model": f"dataset-{world.chat_dataset}-v0"}, 422, "not-a-base-model"),
            ({"method": "dpo"}, 422, "dataset-schema-mismatch"),  # dpo needs preference rows
        ]
        for overrides, status, slug in cases:
            response = await dev.post("/v1/jobs/training", json=world.training_request(suffix=marker, **overrides))
            body = assert_problem(response, status, slug)
            assert body["detail"], body
        missing_version = await dev.post("/v1/jobs/training", json=world.training_request(dataset_version=7))
        assert missing_version.json()["versions"] == [0, 1]
    assert await _row_counts(gateway) == before
    # A later job's command arrives, and the tap has read all the gateway sent: none of the refused ones is there.
    job_id = await _submit(gateway, world)
    await world.commands.wait_for(job_id, StartTraining)
    await world.all_commands_read(gateway)
    assert not [c for c in world.commands.messages if isinstance(c, StartTraining) and c.suffix == marker]


async def test_a_training_budget_over_the_policy_is_refused(gateway, world):
    settings = gateway.state.settings
    hyper = {"learning_rate": 1e-3, "batch_size": 2, "seq_len": 64}
    async with gateway.client(world.developer.secret) as dev:
        for budget in ({"max_steps": settings.gateway_max_training_steps + 1}, {"epochs": 1e9}):
            body = world.training_request(hyperparameters={**hyper, **budget})
            refused = assert_problem(await dev.post("/v1/jobs/training", json=body), 422, "training-budget-too-large")
            assert "over this platform's limit" in refused["detail"]
        within = world.training_request(hyperparameters={**hyper, "max_steps": settings.gateway_max_training_steps})
        assert (await dev.post("/v1/jobs/training", json=within)).status_code == 202


async def test_chat_rows_need_a_base_model_with_a_chat_template(gateway, world):
    files = {p: d for p, d in sample_files("no-template").items() if p != "chat_template.jinja"}
    async with gateway.client(world.developer.secret) as dev:
        accepted = await import_artifact(dev, files, name=f"plain-{uuid.uuid4().hex[:8]}")
        plain = await registered(dev, accepted.json()["id"])
        assert plain["metadata"] == {"chat_template": False}
        refused = await dev.post("/v1/jobs/training", json=world.training_request(base_model=plain["id"]))
    body = assert_problem(refused, 422, "base-model-lacks-chat-template")
    assert plain["id"] in body["detail"]


async def test_invalid_requests_are_422_problems(gateway, world):
    async with gateway.client(world.developer.secret) as dev:
        hyper = world.training_request()["hyperparameters"]
        for body in (
            world.training_request(hyperparameters={**hyper, "epochs": 2}),  # two budgets
            world.training_request(hyperparameters={"learning_rate": 1e-3}),  # none
            world.training_request(method="ppo"),
            world.training_request(quantization="int3"),
            world.training_request(adapter={"r": 0}),
            world.training_request(eval_split=1.5),
            world.training_request(suffix="has:colon"),
            world.training_request(surprise=True),
            {"dataset": world.chat_dataset},
        ):
            assert_problem(await dev.post("/v1/jobs/training", json=body), 422, "validation-error")
    async with gateway.client(world.viewer.secret) as view:
        assert_problem(await view.post("/v1/jobs/training", json=world.training_request()), 403, "insufficient-role")


async def test_an_idempotent_replay_returns_the_first_job_and_queues_one_command(gateway, world):
    key = f"job-{uuid.uuid4().hex}"
    request = world.training_request(suffix=f"idem-{uuid.uuid4().hex[:6]}")
    async with gateway.client(world.developer.secret) as dev:
        # Side by side: one is checked and recorded; the other is told it is still running, or gets its answer.
        both = await asyncio.gather(
            *(dev.post("/v1/jobs/training", json=request, headers={"Idempotency-Key": key}) for _ in range(2))
        )
        assert sorted(r.status_code for r in both) in ([202, 202], [202, 409])
        first = next(r for r in both if r.status_code == 202)
        again = await dev.post("/v1/jobs/training", json=request, headers={"Idempotency-Key": key})
        assert (again.status_code, again.json()) == (202, first.json())
        assert again.headers["Idempotency-Replayed"] == "true"
        other = await dev.post("/v1/jobs/training", json=world.training_request(), headers={"Idempotency-Key": key})
        assert_problem(other, 422, "idempotency-key-reused")
    job_id = first.json()["id"]
    await world.commands.wait_for(job_id, StartTraining)
    await world.all_commands_read(gateway)  # a second command, were there one, would be in the tap by now
    assert (
        len([c for c in world.commands.messages if isinstance(c, StartTraining) and c.suffix == request["suffix"]]) == 1
    )


async def test_the_job_follows_its_trainers_events_and_ignores_a_redelivery(gateway, world):
    job_id = await _submit(gateway, world, suffix="follow")
    bus = world.bus
    await bus.publish(TrainingStarted(job_id=job_id, worker="gpu-7", total_steps=20))
    async with gateway.client(world.viewer.secret) as view:
        running = await job_when(view, job_id, status="running")
        assert running["worker"] == "gpu-7"
        assert running["progress"] == {"step": 0, "total_steps": 20}
        assert running["started_at"] is not None

        progressed = TrainingProgressed(
            job_id=job_id, step=10, total_steps=20, loss=1.25, learning_rate=1e-3, tokens_per_second=900, eta_seconds=30
        )
        envelope = bus.envelope_for(progressed)
        record = encode(progressed, envelope)
        for _ in range(2):  # at-least-once delivery: the same message twice
            await bus.publish_record(TRAINING_EVENTS.name, record)
        halfway = await job_when(view, job_id, loss=1.25)
        assert halfway["progress"] == {"step": 10, "total_steps": 20}
        assert halfway["estimated_finish"] is not None

        await bus.publish(TrainingCheckpointed(job_id=job_id, step=10, uri="file:///ckpt/10"))
        await bus.publish(
            TrainingCompleted(
                job_id=job_id,
                adapter_artifact_id="art-adapter-1",
                steps=20,
                duration_seconds=12.5,
                metrics={"eval_loss": 0.9, "exact_match": 0.5},
            )
        )
        done = await job_when(view, job_id, status="completed")
        assert done["adapter_artifact_id"] == "art-adapter-1"
        assert done["metrics"] == {"eval_loss": 0.9, "exact_match": 0.5}
        assert done["progress"] == {"step": 20, "total_steps": 20}
        assert done["fine_tuned_model"] == f"ft:{world.base_model_name}:follow:{job_id}"
        assert done["finished_at"] is not None
        assert done["estimated_finish"] is None
        # queued, started, progressed (once), checkpointed, completed
        assert done["last_event_id"] == 5
        completed = (await view.get("/v1/jobs", params={"status": "completed"})).json()["data"]
        assert job_id in [j["id"] for j in completed]

        # An event after the end changes nothing, as seen once the gateway's consumer has applied it.
        late = await bus.publish(TrainingFailed(job_id=job_id, reason="late"))
        await consumed(gateway.state.runtime.pool, [late])
        assert (await view.get(f"/v1/jobs/{job_id}")).json()["status"] == "completed"


async def test_a_failed_job_says_why(gateway, world):
    job_id = await _submit(gateway, world)
    await world.bus.publish(TrainingFailed(job_id=job_id, reason="CUDA out of memory", error_type="out_of_memory"))
    async with gateway.client(world.viewer.secret) as view:
        failed = await job_when(view, job_id, status="failed")
    assert failed["failure"] == {"reason": "CUDA out of memory", "error_type": "out_of_memory"}


async def test_cancel_sends_cancel_training_once_and_a_finished_job_is_409(gateway, world):
    job_id = await _submit(gateway, world)
    async with gateway.client(world.developer.secret) as dev:
        accepted = await dev.post(f"/v1/jobs/{job_id}/cancel", json={"reason": "wrong dataset"})
        assert accepted.status_code == 202, accepted.text
        assert accepted.json()["cancel_requested_by"] == world.developer.name
        assert accepted.json()["status"] == "queued"  # until the worker confirms
        again = await dev.post(f"/v1/jobs/{job_id}/cancel")
        assert again.status_code == 202
        [cancel] = await world.commands.wait_for(job_id, CancelTraining)
        assert (cancel.requested_by, cancel.reason) == (world.developer.name, "wrong dataset")

        await world.bus.publish(TrainingCancelled(job_id=job_id, at_step=0, reason="wrong dataset"))
        await job_when(dev, job_id, status="cancelled")
        assert_problem(await dev.post(f"/v1/jobs/{job_id}/cancel"), 409, "job-finished")
        assert_problem(await dev.post("/v1/jobs/ftjob-none/cancel"), 404, "job-not-found")
    await world.all_commands_read(gateway)
    assert len(world.commands.of(job_id, CancelTraining)) == 1
    async with gateway.client(world.viewer.secret) as view:
        assert_problem(await view.post(f"/v1/jobs/{job_id}/cancel"), 403, "insufficient-role")
        assert_problem(await view.get("/v1/jobs/ftjob-none"), 404, "job-not-found")


async def test_jobs_are_listed_newest_first_a_page_at_a_time(gateway, world):
    ids = [await _submit(gateway, world) for _ in range(3)]
    async with gateway.client(world.viewer.secret) as view:
        first = (await view.get("/v1/jobs", params={"limit": 2})).json()
        assert [j["id"] for j in first["data"]] == ids[::-1][:2]
        second = (await view.get("/v1/jobs", params={"limit": 2, "cursor": first["next_cursor"]})).json()
        assert second["data"][0]["id"] == ids[0]


async def test_text_postgres_cannot_store_is_a_422_not_a_500(gateway: RunningGateway, keys: dict[str, Key]) -> None:
    # Found by fuzzing: a NUL byte reached Postgres and came back as a 500. The edge refuses it now, and a NUL that
    # still reached the database would be answered as the client's error.
    async with gateway.client(keys["viewer"].secret) as viewer, gateway.client(keys["developer"].secret) as dev:
        listed = await viewer.get("/v1/files", params={"after": "file-\x00"})
        assert listed.status_code == 422, listed.text
        cancelled = await dev.post("/v1/jobs/ftjob-nope/cancel", json={"reason": "stop\x00now"})
        assert cancelled.status_code == 422, cancelled.text
        assert cancelled.headers["content-type"].startswith("application/problem+json")
