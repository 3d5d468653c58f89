"""One evaluation job from command to outcome: check the metrics, read the suite's exact version, load and verify the
model and adapter (or reach the deployment), answer every item batch by batch, score the answers, and store the
report for the registry to sign.

A job redelivered after its worker died starts over: answers are greedy, so the report comes out the same, under the
same artifact id. The outcome's events (ArtifactSubmitted, then EvaluationCompleted; or EvaluationFailed /
EvaluationCancelled) are returned, not published: the job consumer records them with the job's end in one
transaction (outbox).
Produces directly: EvaluationStarted, EvaluationProgressed (evaluation.events.v1).
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import time
from concurrent.futures import Executor
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

import httpx
from modelops_contracts import (
    ArtifactKind,
    ArtifactSubmitted,
    CancelEvaluation,
    Envelope,
    EvaluationCancelled,
    EvaluationCompleted,
    EvaluationFailed,
    EvaluationProgressed,
    EvaluationStarted,
    JobStatus,
    LineageRelation,
    ParentRef,
    StartEvaluation,
)
from modelops_contracts.catalog import EVALUATION_COMMANDS
from modelops_shared.artifact_upload import upload_directory
from modelops_shared.artifacts import ArtifactClient, ArtifactError, VerifiedArtifact
from modelops_shared.bus import Bus
from modelops_shared.jobs import (
    InputNotFound,
    InputUnusable,
    JobCommands,
    Outcome,
    StopSignal,
    Transient,
    fetch_input,
    outcome_of_error,
    publish_progress,
    resolve_input,
)
from modelops_shared.storage import ObjectStore
from modelops_shared.storage.delta import DatasetNotFound, read_dataset

from . import metrics, reports, suites
from .domain import MetricUnusable
from .settings import EvaluatorSettings
from .subjects import Deployment, LocalModel, Subject, choose, continuation

MODEL_KINDS = (ArtifactKind.MERGED_MODEL, ArtifactKind.QUANTIZED_MODEL)

EVALUATION_JOBS = JobCommands(
    topic=EVALUATION_COMMANDS,
    start=StartEvaluation,
    cancel=CancelEvaluation,
    failed_event=lambda job_id, error_type, reason: EvaluationFailed(
        job_id=job_id, reason=reason, error_type=error_type
    ),
    cancelled_event=lambda job_id, reason: EvaluationCancelled(job_id=job_id, reason=reason),
)


def report_artifact_id(job_id: str) -> str:
    """Derived from the job alone, so a redelivered job submits the same artifact."""
    return f"evalreport-{hashlib.sha256(f'eval_report:{job_id}'.encode()).hexdigest()[:24]}"


@dataclass(frozen=True)
class Inputs:
    """The registry's records of what is evaluated and on what, the suite's items, and, for a model the evaluator
    runs itself, its verified copies."""

    model: dict[str, Any]
    adapter: dict[str, Any] | None
    suite: dict[str, Any]
    items: list[suites.Item]
    local: tuple[VerifiedArtifact, VerifiedArtifact | None] | None


class JobRunner:
    def __init__(
        self,
        settings: EvaluatorSettings,
        store: ObjectStore,
        bus: Bus,
        artifacts: ArtifactClient,
        executor: Executor,
        inference: httpx.AsyncClient,
    ) -> None:
        self.settings = settings
        self.store = store
        self.bus = bus
        self.artifacts = artifacts
        self.executor = executor
        self.inference = inference

    async def run(self, spec: StartEvaluation, cause: Envelope, stop: StopSignal, worker: str) -> Outcome:
        """Evaluate the job to an outcome; raises Transient when the infrastructure, not the job, is at fault."""
        began = time.monotonic()
        work = self.settings.work_dir / "jobs" / hashlib.sha256(spec.job_id.encode()).hexdigest()[:32]
        try:
            scorers = metrics.scorers(spec.metrics)
            asked = {m.name for m in spec.metrics}
            inputs = await self._inputs(spec)
            items = inputs.items
            if metrics.MULTIPLE_CHOICE in asked and any(item.choices is None for item in items):
                raise MetricUnusable("multiple_choice scores a suite of multiple_choice rows (prompt, choices, answer)")
            started = EvaluationStarted(job_id=spec.job_id, worker=worker, items=len(items))
            await publish_progress(self.bus, started, spec.job_id, cause)
            subject = await self._subject(spec, inputs)
            answers: list[str] | None = [] if scorers else None
            scored: list[tuple[float, int]] | None = [] if metrics.PERPLEXITY in asked else None
            chosen: dict[str, list[float]] = {}
            step = self.settings.evaluator_concurrency * 2 if spec.deployment else self.settings.evaluator_batch_size
            for start in range(0, len(items), step):
                if stop.reason() == "cancelled":
                    return EVALUATION_JOBS.cancelled(spec.job_id, stop.detail)
                if stop.reason():
                    return Outcome(None)  # handed off: the next owner starts over
                batch = items[start : start + step]
                if answers is not None:
                    answers += await subject.answer(batch, spec.max_new_tokens)
                if scored is not None:
                    scored += await subject.loglikelihood(
                        [(item, continuation(item, item.reference)) for item in batch]
                    )
                if metrics.MULTIPLE_CHOICE in asked:
                    acc, acc_norm = await choose(subject, batch)
                    chosen.setdefault(metrics.MULTIPLE_CHOICE, []).extend(acc)
                    chosen.setdefault(f"{metrics.MULTIPLE_CHOICE}_norm", []).extend(acc_norm)
                done = start + len(batch)
                progress = EvaluationProgressed(job_id=spec.job_id, done=done, total=len(items))
                await publish_progress(self.bus, progress, spec.job_id, cause)
            scores = {
                name: [scorer(answer, item.reference) for answer, item in zip(answers or [], items, strict=True)]
                for name, scorer in scorers.items()
            } | chosen
            totals = reports.aggregates(scores, scored, len(items))
            about = self._about(spec, inputs)
            folder = work / "report"
            await asyncio.to_thread(reports.write, folder, items, answers, scores, scored, about, totals)
            report_id = report_artifact_id(spec.job_id)
            files = await upload_directory(self.store, folder, f"artifacts/{report_id}")
            submitted = self._submission(spec, inputs, report_id, files, totals, about)
            completed = EvaluationCompleted(
                job_id=spec.job_id,
                report_id=report_id,
                metrics=totals,
                items=len(items),
                duration_seconds=time.monotonic() - began,
            )
            return Outcome(JobStatus.COMPLETED, [submitted, completed], record={"report_id": report_id})
        except Exception as error:
            return outcome_of_error(EVALUATION_JOBS, spec.job_id, error, error_type="evaluation_error")
        finally:
            await asyncio.to_thread(shutil.rmtree, work, True)

    async def _inputs(self, spec: StartEvaluation) -> Inputs:
        """The records of a deployment's model and adapter; or the model and adapter verified and downloaded, to be
        run here."""
        local = None
        if spec.deployment is not None:
            model = await resolve_input(self.artifacts, spec.model, ArtifactKind.BASE_MODEL, also=MODEL_KINDS)
            adapter = await resolve_input(self.artifacts, spec.adapter, ArtifactKind.ADAPTER) if spec.adapter else None
        else:
            local = await self._verified(spec)
            model, adapter = local[0].record, local[1].record if local[1] else None
        if adapter is not None and (trained_on := adapter.get("metadata", {}).get("base_model")) != model["id"]:
            raise InputUnusable(f"adapter {adapter['id']} was trained on {trained_on}, not on {model['id']}")
        try:
            suite = await self.artifacts.find_version(ArtifactKind.DATASET, spec.suite, str(spec.suite_version))
        except ArtifactError as error:
            raise Transient(str(error)) from None
        if suite is None:
            raise InputNotFound(f"suite {spec.suite!r} version {spec.suite_version} is not registered")
        try:
            table = await asyncio.to_thread(read_dataset, self.settings, spec.suite, spec.suite_version)
        except DatasetNotFound as error:
            raise InputNotFound(str(error)) from None
        items = suites.items_of(table, max_items=spec.max_items, seed=spec.seed)
        return Inputs(model, adapter, suite, items, local)

    async def _verified(self, spec: StartEvaluation) -> tuple[VerifiedArtifact, VerifiedArtifact | None]:
        model = await fetch_input(self.artifacts, spec.model, ArtifactKind.BASE_MODEL, also=MODEL_KINDS)
        if model.kind == ArtifactKind.QUANTIZED_MODEL:
            raise InputUnusable(f"{model.id} is a GGUF: deploy it and evaluate the deployment")
        adapter = await fetch_input(self.artifacts, spec.adapter, ArtifactKind.ADAPTER) if spec.adapter else None
        return model, adapter

    async def _subject(self, spec: StartEvaluation, inputs: Inputs) -> Subject:
        """The deployment, or the verified model and adapter loaded here."""
        if inputs.local is None:
            assert spec.served_model is not None  # StartEvaluation: a deployment comes with its model name
            return Deployment(self.inference, spec.served_model, self.settings.evaluator_concurrency, spec.seed)
        model, adapter = inputs.local
        loaded = asyncio.get_running_loop().run_in_executor(
            self.executor, LocalModel, model.path, adapter.path if adapter else None, self.executor, spec.seed
        )
        return await loaded

    def _about(self, spec: StartEvaluation, inputs: Inputs) -> dict[str, Any]:
        """What the report says it measured, signed with it: the registry's gate reads `suite` and `base_model`."""
        return {
            "suite": spec.suite,
            "suite_version": spec.suite_version,
            "suite_id": inputs.suite["id"],
            "model": inputs.model["id"],
            "adapter": inputs.adapter["id"] if inputs.adapter else None,
            "base_model": inputs.model["id"],
            "deployment": spec.deployment,
            "served_model": spec.served_model,
            "metrics_asked": [m.model_dump() for m in spec.metrics],
            "seed": spec.seed,
            "max_items": spec.max_items,
            "max_new_tokens": spec.max_new_tokens,
            "items": len(inputs.items),
            "evaluator": {"transformers": version("transformers"), "peft": version("peft")},
        }

    def _submission(
        self,
        spec: StartEvaluation,
        inputs: Inputs,
        report_id: str,
        files: list[Any],
        totals: dict[str, float],
        about: dict[str, Any],
    ) -> ArtifactSubmitted:
        parents = [
            ParentRef(artifact_id=inputs.model["id"], relation=LineageRelation.EVALUATION_OF),
            ParentRef(artifact_id=inputs.suite["id"], relation=LineageRelation.EVALUATED_ON),
        ]
        if inputs.adapter is not None:
            parents.append(ParentRef(artifact_id=inputs.adapter["id"], relation=LineageRelation.EVALUATION_OF))
        subject = inputs.model["name"] + (f"-{inputs.adapter['name']}" if inputs.adapter else "")
        return ArtifactSubmitted(
            artifact_id=report_id,
            kind=ArtifactKind.EVAL_REPORT,
            name=(spec.name or f"{subject}-on-{spec.suite}")[:200],
            uri=self.store.url_of(f"artifacts/{report_id}"),
            files=files,
            parents=parents,
            job_id=spec.job_id,
            metrics=totals,
            created_by=spec.submitted_by,
            metadata=about,
        )
