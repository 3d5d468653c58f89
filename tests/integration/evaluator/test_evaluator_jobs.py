"""Evaluation jobs over Kafka on the real SmolLM2-135M-Instruct, with and without a LoRA of it: every item answered
and scored, the report signed as an eval_report linked to the model, adapter and suite version, its items queryable
with DuckDB, the same seed giving the same scores; cancels and refusals."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import duckdb
import pytest
from helpers import TopicTap, create_dataset, registered
from modelops_contracts import (
    ArtifactKind,
    CancelEvaluation,
    DatasetSchema,
    EvaluationCancelled,
    EvaluationCompleted,
    EvaluationFailed,
    EvaluationProgressed,
    EvaluationStarted,
    MetricSpec,
    StartEvaluation,
)
from modelops_evaluator.jobs import report_artifact_id
from modelops_shared.artifacts import ArtifactClient
from modelops_shared.bus import Bus

ENDED = (EvaluationCompleted, EvaluationFailed, EvaluationCancelled)
JOB_S = 600.0
CAPITALS = [("France", "Paris"), ("Italy", "Rome"), ("Japan", "Tokyo"), ("Egypt", "Cairo"), ("Spain", "Madrid")]
EVERY_METRIC = [
    MetricSpec(name="exact_match"),
    MetricSpec(name="normalized_match"),
    MetricSpec(name="regex_match", params={"pattern": "[A-Z][a-z]+", "search": True}),
    MetricSpec(name="json_valid"),
    MetricSpec(name="rouge_l"),
    MetricSpec(name="perplexity"),
]


def chat_rows() -> list[dict[str, Any]]:
    return [
        {
            "messages": [
                {"role": "system", "content": "Answer with one word."},
                {"role": "user", "content": f"What is the capital of {country}?"},
                {"role": "assistant", "content": capital},
            ]
        }
        for country, capital in CAPITALS
    ]


@pytest.fixture(scope="module")
async def capitals(embedded_stack, bus: Bus, registry) -> tuple[str, int]:
    return await create_dataset(embedded_stack, bus, registry, chat_rows(), DatasetSchema.CHAT)


def job(model: str, suite: tuple[str, int], metrics: list[MetricSpec], **fields: Any) -> StartEvaluation:
    return StartEvaluation(
        job_id=f"ejob-{uuid.uuid4().hex[:12]}",
        submitted_by="alice",
        model=model,
        suite=suite[0],
        suite_version=suite[1],
        metrics=metrics,
        max_new_tokens=8,
        **fields,
    )


async def evaluated(bus: Bus, events: TopicTap, spec: StartEvaluation) -> EvaluationCompleted:
    await bus.publish(spec)
    completed = await events.first(spec.job_id, *ENDED, timeout=JOB_S)
    assert isinstance(completed, EvaluationCompleted), completed
    return completed


async def test_a_model_s_answers_are_scored_into_a_signed_report_queryable_with_duckdb(
    evaluator, smollm2_base_model, capitals, bus: Bus, events: TopicTap, registry, evaluator_settings, tmp_path: Path
):
    spec = job(smollm2_base_model, capitals, EVERY_METRIC)
    completed = await evaluated(bus, events, spec)

    started = await events.first(spec.job_id, EvaluationStarted)
    assert started.items == len(CAPITALS)
    assert events.of(spec.job_id, EvaluationProgressed)[-1].done == len(CAPITALS)
    totals = completed.metrics
    assert completed.report_id == report_artifact_id(spec.job_id)
    assert totals["items"] == len(CAPITALS)
    # SmolLM2-Instruct knows capitals but answers in sentences ("The capital of France is Paris."): not one exact
    # answer, a ROUGE-L of one word in six or so, no JSON.
    assert 0.0 < totals["rouge_l"] < 1.0, totals
    assert totals["regex_match"] == 1.0
    assert totals["json_valid"] == 0.0
    assert totals["exact_match"] <= totals["normalized_match"]
    assert 1.0 < totals["perplexity"] < 50.0, totals

    record = await registered(registry, completed.report_id)
    assert record["kind"] == "eval_report"
    assert record["metrics"] == totals
    assert record["metadata"]["suite"] == capitals[0]
    assert record["metadata"]["suite_version"] == capitals[1]
    lineage = (await registry.get(f"/v1/artifacts/{completed.report_id}/lineage")).json()
    parents = {(e["parent_id"], e["relation"]) for e in lineage["ancestors"] if e["child_id"] == completed.report_id}
    assert parents == {(smollm2_base_model, "evaluation_of"), (f"dataset-{capitals[0]}-v0", "evaluated_on")}

    async with ArtifactClient.from_settings(evaluator_settings, tmp_path / "cache") as artifacts:
        report = await artifacts.fetch(completed.report_id, ArtifactKind.EVAL_REPORT)
    items = duckdb.sql(
        f"SELECT item, reference, answer, exact_match, rouge_l, perplexity FROM '{report.path / 'items.parquet'}'"
        " ORDER BY item"
    ).fetchall()
    assert [(row[0], row[1]) for row in items] == [(i, capital) for i, (_, capital) in enumerate(CAPITALS)]
    assert sum(capital in answer for _, capital, answer, *_ in items) >= 4, items
    assert sum(row[4] for row in items) / len(items) == pytest.approx(totals["rouge_l"])


async def test_the_same_model_suite_and_seed_give_the_same_scores_and_an_adapter_changes_them(
    evaluator, smollm2_base_model, smollm2_adapter, capitals, bus: Bus, events: TopicTap
):
    metrics = [MetricSpec(name="rouge_l"), MetricSpec(name="perplexity")]
    first = await evaluated(bus, events, job(smollm2_base_model, capitals, metrics, seed=5))
    again = await evaluated(bus, events, job(smollm2_base_model, capitals, metrics, seed=5))
    adapted = await evaluated(bus, events, job(smollm2_base_model, capitals, metrics, adapter=smollm2_adapter))
    assert again.metrics == first.metrics
    assert adapted.metrics["perplexity"] != pytest.approx(first.metrics["perplexity"], rel=1e-4)


async def test_multiple_choice_is_scored_by_the_likeliest_option(
    evaluator, smollm2_base_model, embedded_stack, bus: Bus, registry, events: TopicTap
):
    """SmolLM2 knows capitals: the right city is its likeliest continuation far more often than chance (1 in 3)."""
    cities = [capital for _, capital in CAPITALS]
    rows = [
        {
            "prompt": f"The capital of {country} is",
            "choices": [*[c for c in cities if c != capital][:2], capital],
            "answer": 2,
        }
        for country, capital in CAPITALS
    ]
    suite = await create_dataset(embedded_stack, bus, registry, rows, DatasetSchema.MULTIPLE_CHOICE)
    metrics = [MetricSpec(name="multiple_choice"), MetricSpec(name="exact_match")]
    completed = await evaluated(bus, events, job(smollm2_base_model, suite, metrics))
    assert completed.metrics["multiple_choice"] >= 0.8, completed.metrics
    assert "multiple_choice_norm" in completed.metrics


async def test_multiple_choice_needs_a_multiple_choice_suite(
    evaluator, smollm2_base_model, capitals, bus: Bus, events: TopicTap
):
    spec = job(smollm2_base_model, capitals, [MetricSpec(name="multiple_choice")])
    await bus.publish(spec)
    failed = await events.first(spec.job_id, *ENDED, timeout=JOB_S)
    assert isinstance(failed, EvaluationFailed), failed
    assert (failed.error_type, "multiple_choice rows" in failed.reason) == ("invalid_metric", True)


async def test_a_sample_of_the_suite_scores_max_items(
    evaluator, smollm2_base_model, capitals, bus: Bus, events: TopicTap
):
    completed = await evaluated(
        bus, events, job(smollm2_base_model, capitals, [MetricSpec(name="exact_match")], max_items=2, seed=1)
    )
    assert completed.items == 2


@pytest.mark.parametrize(
    ("metrics", "suite", "error_type", "message"),
    [
        ([MetricSpec(name="bleu_9000")], None, "invalid_metric", "no metric 'bleu_9000'"),
        ([MetricSpec(name="regex_match", params={"pattern": "("})], None, "invalid_metric", "not a regular expression"),
        ([MetricSpec(name="exact_match")], ("no-such-suite", 0), "not_found", "not registered"),
    ],
)
async def test_a_job_that_cannot_run_fails_with_the_reason(
    evaluator, smollm2_base_model, capitals, bus: Bus, events: TopicTap, metrics, suite, error_type, message
):
    spec = job(smollm2_base_model, suite or capitals, metrics)
    await bus.publish(spec)
    failed = await events.first(spec.job_id, *ENDED, timeout=JOB_S)
    assert isinstance(failed, EvaluationFailed), failed
    assert failed.error_type == error_type
    assert message in failed.reason


async def test_a_preference_dataset_is_no_suite(evaluator, smollm2_base_model, embedded_stack, bus, registry, events):
    rows = [{"prompt": "Hi", "chosen": "Hello!", "rejected": "Go away."}]
    suite = await create_dataset(embedded_stack, bus, registry, rows, DatasetSchema.PREFERENCE)
    spec = job(smollm2_base_model, suite, [MetricSpec(name="exact_match")])
    await bus.publish(spec)
    failed = await events.first(spec.job_id, *ENDED, timeout=JOB_S)
    assert isinstance(failed, EvaluationFailed), failed
    assert failed.error_type == "invalid_suite"


async def test_an_adapter_of_another_base_is_refused(
    evaluator, base_model, smollm2_adapter, capitals, bus: Bus, events: TopicTap
):
    spec = job(base_model, capitals, [MetricSpec(name="exact_match")], adapter=smollm2_adapter)
    await bus.publish(spec)
    failed = await events.first(spec.job_id, *ENDED, timeout=JOB_S)
    assert isinstance(failed, EvaluationFailed), failed
    assert failed.error_type == "input_unusable"
    assert "trained on" in failed.reason


async def test_a_job_cancelled_while_it_runs_ends_cancelled(
    evaluator, smollm2_base_model, embedded_stack, bus: Bus, registry, events: TopicTap
):
    many = await create_dataset(embedded_stack, bus, registry, chat_rows() * 20, DatasetSchema.CHAT)
    spec = job(smollm2_base_model, many, [MetricSpec(name="exact_match")])
    await bus.publish(spec)
    await events.first(spec.job_id, EvaluationProgressed, timeout=JOB_S)
    await bus.publish(CancelEvaluation(job_id=spec.job_id, requested_by="alice", reason="wrong suite"))
    ended = await events.first(spec.job_id, *ENDED, timeout=JOB_S)
    assert isinstance(ended, EvaluationCancelled), ended
    assert ended.reason == "wrong suite"
