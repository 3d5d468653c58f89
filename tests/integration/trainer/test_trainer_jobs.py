"""Jobs end to end on the real stack, driven through the bus as the gateway will drive them (its jobs API does not
exist yet): StartTraining in, progress and a signed adapter out; QLoRA; DPO; plugins; cancel; bad specs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
import routing_prompts
import torch
from helpers import TopicTap, registered
from modelops_contracts import (
    AdapterSpec,
    ArtifactKind,
    ArtifactSubmitted,
    CancelTraining,
    DatasetSchema,
    PluginSpec,
    RouterSpec,
    TrainingCancelled,
    TrainingCheckpointed,
    TrainingCompleted,
    TrainingFailed,
    TrainingProgressed,
    TrainingStarted,
    encode,
)
from modelops_shared import snn_router
from modelops_shared.artifacts import ArtifactClient
from modelops_shared.bus import Bus
from modelops_shared.jobs import JobConsumer, ledger
from modelops_trainer.app import create_app
from modelops_trainer.jobs import TRAINING_JOBS, adapter_artifact_id
from modelops_trainer.settings import TrainerSettings
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from .support import arithmetic_rows, create_dataset, job

ENDED = (TrainingCompleted, TrainingFailed, TrainingCancelled)


@pytest.fixture(scope="module")
async def trainer(trainer_settings: TrainerSettings) -> AsyncIterator[None]:
    """One trainer worker in this process (HTTP app lifespan: runtime, cancel watcher, job consumer)."""
    app = create_app(trainer_settings)
    async with app.router.lifespan_context(app):
        yield


@pytest.fixture(scope="module")
async def sft_dataset(embedded_stack, bus: Bus, registry: httpx.AsyncClient) -> tuple[str, int]:
    return await create_dataset(embedded_stack, bus, registry, arithmetic_rows(120), DatasetSchema.SFT)


async def test_a_job_trains_reports_and_hands_a_signed_adapter_that_changes_the_model(
    trainer, base_model, sft_dataset, bus, events: TopicTap, registry, trainer_settings, tmp_path, monkeypatch
):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "mlruns").as_uri())
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    spec = job("tiny-llama", sft_dataset, steps=16)  # by name: the latest registered base_model called tiny-llama
    await bus.publish(spec)

    completed = await events.first(spec.job_id, *ENDED)
    assert isinstance(completed, TrainingCompleted), completed
    assert completed.steps == 16
    assert completed.adapter_artifact_id == adapter_artifact_id(spec.job_id)
    assert {"eval_loss", "perplexity", "exact_match", "train_loss"} <= completed.metrics.keys()
    started = events.of(spec.job_id, TrainingStarted)
    assert [(s.total_steps, s.resumed_from_step) for s in started] == [(16, 0)]
    progress = events.of(spec.job_id, TrainingProgressed)
    assert progress[-1].loss < progress[0].loss  # loss falls
    assert all(p.tokens_per_second > 0 and p.total_steps == 16 for p in progress)
    assert [c.step for c in events.of(spec.job_id, TrainingCheckpointed)] == [4, 8, 12, 16]

    adapter = await registered(registry, completed.adapter_artifact_id)
    assert adapter["kind"] == "adapter"
    assert adapter["job_id"] == spec.job_id
    assert adapter["created_by"] == "alice"
    assert adapter["metrics"]["eval_loss"] == completed.metrics["eval_loss"]
    lineage = (await registry.get(f"/v1/artifacts/{adapter['id']}/lineage")).json()
    assert {(e["parent_id"], e["relation"]) for e in lineage["ancestors"]} == {
        (base_model, "trained_from"),
        (f"dataset-{sft_dataset[0]}-v0", "fine_tuned_on"),
    }

    async with ArtifactClient.from_settings(trainer_settings, tmp_path / "cache") as client:
        fetched = await client.fetch(adapter["id"], ArtifactKind.ADAPTER)
        base = await client.fetch(base_model)
    names = {p.name for p in fetched.path.iterdir()}
    assert {"adapter_model.safetensors", "adapter_config.json", "tokenizer.json", "training_args.json"} <= names
    assert {"metrics.json", "README.md"} <= names
    card = (fetched.path / "README.md").read_text()
    assert "base_model_relation: adapter" in card
    assert f"- {sft_dataset[0]}" in card
    assert json.loads((fetched.path / "training_args.json").read_text())["base_model"]["id"] == base_model

    tokenizer = AutoTokenizer.from_pretrained(fetched.path)
    ids = tokenizer("Question: what is 2 plus 3? Answer:", return_tensors="pt")["input_ids"]
    plain = AutoModelForCausalLM.from_pretrained(base.path)
    with torch.no_grad():
        before = plain(input_ids=ids).logits
        tuned = PeftModel.from_pretrained(plain, fetched.path)
        after = tuned(input_ids=ids).logits
    assert (after - before).abs().max() > 1e-3

    from mlflow.tracking import MlflowClient

    mlflow = MlflowClient((tmp_path / "mlruns").as_uri())
    [run] = mlflow.search_runs(
        [mlflow.get_experiment_by_name("modelops").experiment_id], f"tags.`modelops.job_id` = '{spec.job_id}'"
    )
    assert run.info.status == "FINISHED"
    assert run.data.params["method"] == "sft"
    assert "eval_loss" in run.data.metrics
    assert "loss" in run.data.metrics


async def test_a_qlora_job_trains_the_4bit_base(trainer, base_model, sft_dataset, bus, events: TopicTap, registry):
    spec = job(base_model, sft_dataset, steps=8, quantization="nf4")
    await bus.publish(spec)
    completed = await events.first(spec.job_id, *ENDED)
    assert isinstance(completed, TrainingCompleted), completed
    adapter = await registered(registry, completed.adapter_artifact_id)
    card = (await registry.get(f"/v1/artifacts/{adapter['id']}/files")).json()
    assert {f["path"] for f in card} >= {"adapter_model.safetensors", "README.md"}
    assert adapter["metrics"]["steps"] == 8


async def test_a_dpo_job_trains_on_preference_pairs(
    trainer, base_model, bus, events: TopicTap, registry, embedded_stack
):
    rows = [
        {"prompt": f"What is {a} plus {b}?", "chosen": f" {a + b}", "rejected": f" {a + b + 1}"}
        for a in range(6)
        for b in range(6)
    ]
    dataset = await create_dataset(embedded_stack, bus, registry, rows, DatasetSchema.PREFERENCE)
    spec = job(base_model, dataset, steps=6, method="dpo")
    await bus.publish(spec)
    completed = await events.first(spec.job_id, *ENDED)
    assert isinstance(completed, TrainingCompleted), completed
    assert "eval_loss" in completed.metrics
    assert "eval_rewards/accuracies" in completed.metrics
    assert (await registered(registry, completed.adapter_artifact_id))["name"] == "tiny-llama-dpo"


async def test_plugins_named_in_the_spec_run(trainer, base_model, sft_dataset, bus, events: TopicTap):
    import modelops_example_plugin as example

    example.INVOCATIONS.clear()
    plugins = PluginSpec(
        loss="example-label-smoothing",
        optimizer="example-sgd",
        metrics=["example-token-accuracy"],
        callbacks=["example-grad-norm"],
    )
    spec = job(base_model, sft_dataset, steps=4, plugins=plugins)
    await bus.publish(spec)
    completed = await events.first(spec.job_id, *ENDED)
    assert isinstance(completed, TrainingCompleted), completed
    assert "token_accuracy" in completed.metrics
    assert completed.metrics["max_grad_norm"] > 0
    assert example.INVOCATIONS["optimizer"] == 1
    assert example.INVOCATIONS["loss"] >= 4  # every training step went through the plugin's loss


async def test_a_running_job_is_cancelled_within_seconds(trainer, base_model, sft_dataset, bus, events: TopicTap):
    spec = job(base_model, sft_dataset, steps=400)
    await bus.publish(spec)
    await events.first(spec.job_id, TrainingProgressed)
    await bus.publish(CancelTraining(job_id=spec.job_id, requested_by="bob", reason="wrong dataset"))
    loop = asyncio.get_running_loop()
    asked = loop.time()
    cancelled = await events.first(spec.job_id, *ENDED, timeout=30)
    assert loop.time() - asked < 10
    assert isinstance(cancelled, TrainingCancelled), cancelled
    assert 0 < cancelled.at_step < 400
    assert cancelled.reason == "wrong dataset"
    assert not events.of(adapter_artifact_id(spec.job_id), ArtifactSubmitted)


async def test_a_job_cancelled_before_it_starts_never_trains(trainer, base_model, sft_dataset, bus, events: TopicTap):
    blocker = job(base_model, sft_dataset, steps=400)
    queued = job(base_model, sft_dataset, steps=4)
    await bus.publish(blocker)
    await events.first(blocker.job_id, TrainingStarted)
    await bus.publish(queued)
    await bus.publish(CancelTraining(job_id=queued.job_id, requested_by="bob"))
    await bus.publish(CancelTraining(job_id=blocker.job_id, requested_by="bob"))
    assert isinstance(await events.first(blocker.job_id, *ENDED, timeout=30), TrainingCancelled)
    cancelled = await events.first(queued.job_id, *ENDED, timeout=60)
    assert isinstance(cancelled, TrainingCancelled)
    assert cancelled.at_step == 0
    assert not events.of(queued.job_id, TrainingStarted)


@pytest.mark.parametrize(
    ("change", "error_type", "words"),
    [
        ({"dataset": "no-such-dataset"}, "not_found", "not registered"),
        ({"base_model": "no-such-model"}, "not_found", "no base_model"),
        ({"method": "dpo"}, "invalid_spec", "preference dataset"),
        ({"plugins": PluginSpec(callbacks=["nope"])}, "invalid_spec", "no plugin 'nope'"),
        ({"adapter": AdapterSpec(target_modules=["no_such_proj"])}, "invalid_spec", "LoRA adapter spec"),
    ],
)
async def test_a_bad_job_fails_with_a_clear_reason(
    trainer, base_model, sft_dataset, bus, events: TopicTap, change, error_type, words
):
    spec = job(base_model, sft_dataset, steps=4).model_copy(update=change)
    await bus.publish(spec)
    failed = await events.first(spec.job_id, *ENDED)
    assert isinstance(failed, TrainingFailed), failed
    assert failed.error_type == error_type
    assert words in failed.reason


async def test_an_invalid_spec_fails_its_job_and_the_worker_goes_on(
    trainer, base_model, sft_dataset, bus, events: TopicTap
):
    bad = job(base_model, sft_dataset, steps=4)
    body = bad.model_dump(mode="json")
    body["hyperparameters"]["epochs"] = 1  # both budgets: the contract refuses it
    record = encode(bad, bus.envelope_for(bad))
    await bus.broker.publish(
        json.dumps(body).encode(), topic="training.commands.v1", key=record.key, headers=record.headers
    )
    failed = await events.first(bad.job_id, *ENDED)
    assert isinstance(failed, TrainingFailed)
    assert failed.error_type == "invalid_spec"
    assert "exactly one of max_steps or epochs" in failed.reason

    after = job(base_model, sft_dataset, steps=2)
    await bus.publish(after)
    assert isinstance(await events.first(after.job_id, *ENDED), TrainingCompleted)


async def test_a_database_outage_delays_a_job_and_loses_nothing(
    trainer, base_model, sft_dataset, bus, events: TopicTap, monkeypatch
):
    outages = 2
    has_ended = ledger.has_ended

    async def flaky(pool, job_id):
        nonlocal outages
        if outages:
            outages -= 1
            raise asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation")
        return await has_ended(pool, job_id)

    monkeypatch.setattr(ledger, "has_ended", flaky)
    spec = job(base_model, sft_dataset, steps=2)
    await bus.publish(spec)
    assert isinstance(await events.first(spec.job_id, *ENDED), TrainingCompleted)
    assert outages == 0  # the command was handled again after each failure, not dropped or dead-lettered


async def test_readiness_fails_once_the_job_consumer_has_stopped(trainer_settings) -> None:
    consumer = JobConsumer(
        trainer_settings,
        None,
        None,
        TRAINING_JOBS,
        None,
        group="g",
        worker="w",
        max_attempts=1,  # type: ignore[arg-type]
    )
    assert not await consumer.alive()  # never started
    consumer._task = asyncio.create_task(asyncio.sleep(0))
    await consumer._task
    assert not await consumer.alive()
    consumer._task = asyncio.create_task(asyncio.sleep(60))
    assert await consumer.alive()
    consumer._task.cancel()
    await consumer.consumer.stop()
    await consumer.watcher.consumer.stop()


@pytest.fixture(scope="module")
async def routing_dataset(embedded_stack, bus: Bus, registry: httpx.AsyncClient) -> tuple[str, int]:
    train_rows, held_out = routing_prompts.split(seed=0, train_per_target=40, held_out_per_target=10)
    return await create_dataset(embedded_stack, bus, registry, train_rows + held_out, DatasetSchema.ROUTING)


async def test_a_snn_router_job_trains_a_signed_router_over_the_embedding_model(
    trainer, minilm, routing_dataset, bus, events: TopicTap, registry, trainer_settings, tmp_path
):
    spec = job(
        minilm,
        routing_dataset,
        method="snn_router",
        router=RouterSpec(fallback="chat"),
        hyperparameters={"max_steps": None, "epochs": 30, "batch_size": 32, "learning_rate": 2e-3},
        suffix="four-ways",
    )
    await bus.publish(spec)

    completed = await events.first(spec.job_id, *ENDED)
    assert isinstance(completed, TrainingCompleted), completed
    assert completed.adapter_artifact_id == adapter_artifact_id(spec.job_id, "router")
    assert completed.metrics["eval_accuracy"] >= 0.75  # 40 held-out prompts, phrasings unseen in training
    assert 0 < completed.metrics["eval_spike_rate"] < 0.06
    assert completed.metrics["eval_synaptic_ops"] > 0
    progress = events.of(spec.job_id, TrainingProgressed)
    assert progress[-1].step == progress[-1].total_steps
    assert progress[-1].loss < progress[0].loss

    router = await registered(registry, completed.adapter_artifact_id)
    assert (router["kind"], router["name"]) == ("router", "four-ways")
    assert router["metadata"]["labels"] == sorted(routing_prompts.TARGETS)
    assert (router["metadata"]["embedding_model"], router["metadata"]["fallback"]) == (minilm, "chat")
    lineage = (await registry.get(f"/v1/artifacts/{router['id']}/lineage")).json()
    assert {(e["parent_id"], e["relation"]) for e in lineage["ancestors"]} == {
        (minilm, "embedded_with"),
        (f"dataset-{routing_dataset[0]}-v0", "trained_on"),
    }
    async with ArtifactClient.from_settings(trainer_settings, tmp_path / "cache") as client:
        fetched = await client.fetch(router["id"], ArtifactKind.ROUTER)
    assert {"router.json", "router.safetensors", "README.md", "metrics.json"} <= {
        p.name for p in fetched.path.iterdir()
    }
    assert snn_router.load(fetched.path).config.fallback == "chat"


async def test_a_router_job_needs_routing_rows_and_an_embedding_model(
    trainer, minilm, base_model, sft_dataset, routing_dataset, bus, events: TopicTap
):
    wrong_rows = job(minilm, sft_dataset, method="snn_router")
    wrong_model = job(base_model, routing_dataset, method="snn_router")
    unknown_fallback = job(minilm, routing_dataset, method="snn_router", router=RouterSpec(fallback="poetry"))
    for spec in (wrong_rows, wrong_model, unknown_fallback):
        await bus.publish(spec)
    failures = [await events.first(spec.job_id, *ENDED) for spec in (wrong_rows, wrong_model, unknown_fallback)]
    assert [(f.error_type, type(f)) for f in failures] == [
        ("invalid_spec", TrainingFailed),
        ("input_unusable", TrainingFailed),
        ("invalid_spec", TrainingFailed),
    ], failures
    assert "does not train with method snn_router" in failures[0].reason
    assert "poetry" in failures[2].reason
