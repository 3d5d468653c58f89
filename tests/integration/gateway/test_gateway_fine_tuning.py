"""The official `openai` client's fine-tuning calls against the gateway, unchanged: an uploaded file trains at once,
jobs list, retrieve, list their events and cancel as OpenAI objects, a completed job names its `ft:` model and has
its adapter deployed (once; a native job is not), and every refusal raises the client's own exception with a readable
message."""

from __future__ import annotations

import json
import re

import openai
import pytest
from helpers import consumed
from modelops_contracts import (
    CancelTraining,
    Deploy,
    StartTraining,
    TrainingCancelled,
    TrainingCompleted,
    TrainingProgressed,
    TrainingStarted,
    encode,
)
from modelops_contracts.catalog import TRAINING_EVENTS
from modelops_contracts.deployments import DEPLOYMENT_NAME

from .jobs_support import job_when

EXAMPLES = [
    {"messages": [{"role": "user", "content": f"{i} + {i}?"}, {"role": "assistant", "content": str(i + i)}]}
    for i in range(4)
]


def client(gateway, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key=key, timeout=30)


async def test_an_uploaded_file_trains_and_the_job_lists_retrieves_shows_events_and_cancels(gateway, world):
    developer = client(gateway, world.developer.secret)
    jsonl = "".join(json.dumps(row) + "\n" for row in EXAMPLES).encode()
    uploaded = await developer.files.create(file=("train.jsonl", jsonl), purpose="fine-tune")
    # At once: the gateway waits for the registry to record the file's dataset, which it announced itself.
    job = await developer.fine_tuning.jobs.create(
        model=world.base_model_name,
        training_file=uploaded.id,
        hyperparameters={"n_epochs": 2, "batch_size": 4, "learning_rate_multiplier": 0.5},
        suffix="arith",
        seed=11,
    )
    assert (job.object, job.status, job.model, job.training_file) == (
        "fine_tuning.job",
        "queued",
        world.base_model_name,
        uploaded.id,
    )
    assert (job.hyperparameters.n_epochs, job.hyperparameters.batch_size) == (2, 4)
    assert job.hyperparameters.learning_rate_multiplier == 0.5
    assert (job.seed, job.fine_tuned_model, job.finished_at, job.error) == (11, None, None, None)
    assert job.method.type == "supervised"

    [command] = await world.commands.wait_for(job.id, StartTraining)
    assert (command.dataset, command.dataset_version, command.method) == (uploaded.id, 0, "sft")
    spec = command.hyperparameters
    assert (spec.epochs, spec.batch_size, spec.learning_rate, spec.seed) == (2, 4, pytest.approx(1e-4), 11)

    viewer = client(gateway, world.viewer.secret)
    assert job.id in [j.id async for j in viewer.fine_tuning.jobs.list(limit=2)]
    assert (await viewer.fine_tuning.jobs.retrieve(job.id)).id == job.id

    await world.bus.publish(TrainingStarted(job_id=job.id, worker="w", total_steps=8))
    await world.bus.publish(
        TrainingProgressed(
            job_id=job.id, step=4, total_steps=8, loss=0.75, learning_rate=1e-4, tokens_per_second=50, eta_seconds=4
        )
    )
    async with gateway.client(world.viewer.secret) as view:
        await job_when(view, job.id, loss=0.75)
    running = await viewer.fine_tuning.jobs.retrieve(job.id)
    assert running.status == "running"
    assert running.estimated_finish is not None
    events = [event async for event in viewer.fine_tuning.jobs.list_events(job.id, limit=2)]  # pages through all
    assert [e.type for e in events] == ["metrics", "message", "message"]  # newest first
    assert events[0].data == {
        "step": 4,
        "total_steps": 8,
        "train_loss": 0.75,
        "learning_rate": 1e-4,
        "tokens_per_second": 50.0,
    }
    assert events[0].message == "Step 4/8: training loss=0.7500"
    assert events[-1].message == f"Created fine-tuning job: {job.id}"
    assert len({e.id for e in events}) == 3

    cancelling = await developer.fine_tuning.jobs.cancel(job.id)
    assert cancelling.status == "running"  # until the worker confirms
    await world.commands.wait_for(job.id, CancelTraining)
    await world.bus.publish(TrainingCancelled(job_id=job.id, at_step=4))
    async with gateway.client(world.viewer.secret) as view:
        await job_when(view, job.id, status="cancelled")
    cancelled = await viewer.fine_tuning.jobs.retrieve(job.id)
    assert cancelled.status == "cancelled"
    assert cancelled.finished_at is not None
    with pytest.raises(openai.ConflictError) as caught:
        await developer.fine_tuning.jobs.cancel(job.id)
    assert caught.value.message == f"Error code: 409 - job {job.id} is already cancelled"
    assert caught.value.code == "job-finished"


async def test_a_completed_job_names_its_fine_tuned_model(gateway, world):
    developer = client(gateway, world.developer.secret)
    job = await developer.fine_tuning.jobs.create(
        model=world.base_model_id, training_file=world.chat_dataset, suffix="s1"
    )
    await world.bus.publish(TrainingStarted(job_id=job.id, worker="w", total_steps=2))
    await world.bus.publish(
        TrainingCompleted(
            job_id=job.id, adapter_artifact_id="art-x", steps=2, duration_seconds=3, metrics={"eval_loss": 1}
        )
    )
    async with gateway.client(world.viewer.secret) as view:
        await job_when(view, job.id, status="completed")
    done = await developer.fine_tuning.jobs.retrieve(job.id)
    assert done.status == "succeeded"
    assert done.fine_tuned_model == f"ft:{world.base_model_name}:s1:{job.id}"
    assert done.finished_at is not None
    assert done.estimated_finish is None
    assert (done.hyperparameters.n_epochs, done.hyperparameters.learning_rate_multiplier) == (3, 1.0)  # the defaults
    [latest] = (await developer.fine_tuning.jobs.list_events(job.id, limit=1)).data
    assert latest.message == f"New fine-tuned model created: {done.fine_tuned_model}"
    assert latest.data == {"adapter_artifact_id": "art-x", "metrics": {"eval_loss": 1.0}}


async def test_a_succeeded_job_is_deployed_once_and_a_native_job_is_not(gateway, world):
    developer = client(gateway, world.developer.secret)
    job = await developer.fine_tuning.jobs.create(
        model=world.base_model_name, training_file=world.chat_dataset, suffix="served"
    )
    async with gateway.client(world.developer.secret) as dev:
        accepted = await dev.post("/v1/jobs/training", json=world.training_request(suffix="native"))
    assert accepted.status_code == 202, accepted.text
    native_id = accepted.json()["id"]

    completed = TrainingCompleted(job_id=job.id, adapter_artifact_id="art-served", steps=2, duration_seconds=3)
    record = encode(completed, world.bus.envelope_for(completed))
    for _ in range(2):  # at-least-once delivery: the same message twice
        await world.bus.publish_record(TRAINING_EVENTS.name, record)
    # Another completion of the finished job (a trainer retried) changes nothing either.
    again = await world.bus.publish(
        TrainingCompleted(job_id=job.id, adapter_artifact_id="art-again", steps=2, duration_seconds=3)
    )
    native = await world.bus.publish(
        TrainingCompleted(job_id=native_id, adapter_artifact_id="art-native", steps=2, duration_seconds=3)
    )
    async with gateway.client(world.viewer.secret) as view:
        await job_when(view, job.id, status="completed")
        await job_when(view, native_id, status="completed")

    name = f"ft-{job.id}"
    assert re.fullmatch(DEPLOYMENT_NAME, name)
    [deploy] = await world.deployments.wait_for(name, Deploy)
    assert (deploy.base_model, deploy.adapters, deploy.requested_by) == (
        world.base_model_id,  # the exact artifact, although the job named the base model by name
        ["art-served"],
        world.developer.name,
    )
    # Recorded as the gateway's own deployment, so it reads `queued` until the inference service picks it up.
    pool = gateway.state.runtime.pool
    row = await pool.fetchrow("SELECT adapters, requested_by FROM deployments WHERE name = $1", name)
    assert (list(row["adapters"]), row["requested_by"]) == (["art-served"], world.developer.name)

    # `again` follows both copies of the first completion on the job's partition: once the gateway's consumer has
    # applied it (and the native job's), and the taps have read all the gateway sent, a second Deploy would be there.
    await consumed(pool, [again, native])
    await world.all_commands_read(gateway)
    assert len(world.deployments.of(name, Deploy)) == 1
    assert not [c for c in world.deployments.messages if native_id in c.subject()]


async def test_dpo_is_chosen_through_the_method(gateway, world):
    developer = client(gateway, world.developer.secret)
    job = await developer.fine_tuning.jobs.create(
        model=world.base_model_name,
        training_file=world.preference_dataset,
        method={"type": "dpo", "dpo": {"hyperparameters": {"n_epochs": 1, "beta": "auto"}}},
    )
    [command] = await world.commands.wait_for(job.id, StartTraining)
    assert (command.method, command.hyperparameters.epochs) == ("dpo", 1)
    assert job.method.type == "dpo"


async def test_refusals_raise_the_clients_exceptions_with_messages(gateway, world):
    developer = client(gateway, world.developer.secret)
    create = developer.fine_tuning.jobs.create
    with pytest.raises(openai.NotFoundError) as caught:
        await create(model="no-such-model", training_file=world.chat_dataset)
    assert caught.value.message == "Error code: 404 - model: no registered base model 'no-such-model'"
    assert (caught.value.param, caught.value.code) == ("model", "base-model-not-found")
    with pytest.raises(openai.NotFoundError) as caught:
        await create(model=world.base_model_name, training_file="file-none")
    assert caught.value.param == "training_file"
    with pytest.raises(openai.UnprocessableEntityError) as caught:
        await create(model=world.base_model_name, training_file=world.chat_dataset, validation_file="file-v")
    assert caught.value.param == "validation_file"
    with pytest.raises(openai.UnprocessableEntityError) as caught:
        await create(model=world.base_model_name, training_file=world.chat_dataset, method={"type": "reinforcement"})
    with pytest.raises(openai.UnprocessableEntityError) as caught:
        await create(model=world.base_model_name, training_file=world.chat_dataset, method={"type": "dpo"})
    assert caught.value.code == "dataset-schema-mismatch"
    with pytest.raises(openai.PermissionDeniedError):
        await client(gateway, world.viewer.secret).fine_tuning.jobs.create(
            model=world.base_model_name, training_file=world.chat_dataset
        )
    with pytest.raises(openai.NotFoundError):
        await developer.fine_tuning.jobs.retrieve("ftjob-none")
    with pytest.raises(openai.AuthenticationError):
        await client(gateway, "mok_wrong").fine_tuning.jobs.list()
