"""One job from command to outcome: fetch and verify the base model, load the exact dataset version, resume from the
latest checkpoint, train on the worker thread while progress and checkpoints flow out, then store the adapter. A
`snn_router` job fetches an embedding model instead, trains a spiking router (router_training.py) and stores it.

The outcome's terminal events (ArtifactSubmitted and TrainingCompleted, or TrainingFailed / TrainingCancelled) are
returned, not published: the consumer records them with the job's end in one transaction (outbox).
Produces directly: TrainingStarted, TrainingProgressed, TrainingCheckpointed (training.events.v1).
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import logging
import re
import shutil
import time
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

import httpx
import torch
from modelops_contracts import (
    ArtifactKind,
    ArtifactSubmitted,
    CancelTraining,
    Envelope,
    JobStatus,
    LineageRelation,
    Message,
    ParentRef,
    RouterSpec,
    StartTraining,
    TrainingCancelled,
    TrainingCheckpointed,
    TrainingCompleted,
    TrainingFailed,
    TrainingProgressed,
    TrainingStarted,
)
from modelops_contracts.catalog import TRAINING_COMMANDS
from modelops_shared import snn_router
from modelops_shared.artifact_upload import upload_directory
from modelops_shared.artifacts import ArtifactClient, ArtifactError, VerifiedArtifact
from modelops_shared.bus import Bus
from modelops_shared.jobs import (
    InputNotFound,
    JobCommands,
    JobFailure,
    Outcome,
    StopSignal,
    Transient,
    fetch_input,
)
from modelops_shared.storage import ObjectStore, StoreError
from modelops_shared.storage.delta import DatasetNotFound, read_dataset

from . import data, distributed, engine, router_training
from .callbacks import Progress
from .capabilities import detect
from .card import write_card, write_router_card
from .checkpoints import Checkpoints
from .domain import JobSpecError
from .metrics import TOKENS_PER_SECOND
from .mlflow_runs import Tracker
from .plugins import load_plugins
from .settings import TrainerSettings

log = logging.getLogger(__name__)

PUBLISH_TIMEOUT_S = 30.0
JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def adapter_artifact_id(job_id: str, kind: str = "adapter") -> str:
    """Derived from the job id alone, so a redelivered job can only ever submit the same adapter (or router)."""
    return f"{kind}-{hashlib.sha256(f'{kind}:{job_id}'.encode()).hexdigest()[:24]}"


TRAINING_JOBS = JobCommands(
    topic=TRAINING_COMMANDS,
    start=StartTraining,
    cancel=CancelTraining,
    failed_event=lambda job_id, error_type, reason: TrainingFailed(job_id=job_id, reason=reason, error_type=error_type),
    cancelled_event=lambda job_id, reason: TrainingCancelled(job_id=job_id, reason=reason),
)
failed = TRAINING_JOBS.failed


class JobRunner:
    def __init__(
        self,
        settings: TrainerSettings,
        store: ObjectStore,
        bus: Bus,
        artifacts: ArtifactClient,
        executor: Executor,
    ) -> None:
        self.settings = settings
        self.store = store
        self.bus = bus
        self.artifacts = artifacts
        self.executor = executor

    async def run(self, spec: StartTraining, cause: Envelope, stop: StopSignal, worker: str) -> Outcome:
        """Train the job to an outcome; raises Transient when the infrastructure, not the job, is at fault."""
        began = time.monotonic()
        work = self.settings.work_dir / "jobs" / hashlib.sha256(spec.job_id.encode()).hexdigest()[:32]
        tracker: Tracker | None = None
        try:
            base, dataset, plan = await self._prepare(spec, work)
            tracker = await asyncio.to_thread(Tracker.for_job, spec.job_id, _tracked_params(spec, base, dataset))
            hooks = _JobHooks(asyncio.get_running_loop(), self, spec, cause, worker, stop, tracker)
            # In this task's context, so that the hooks' publishes from the thread continue the job's trace.
            in_context = contextvars.copy_context().run
            result = await asyncio.get_running_loop().run_in_executor(self.executor, in_context, _train, plan, hooks)
            if result.stopped == "cancelled":
                await _finish(tracker, JobStatus.CANCELLED)
                cancelled = TrainingCancelled(job_id=spec.job_id, at_step=result.steps, reason=stop.detail)
                held = {"steps": result.steps, **_held(spec, result)}
                return Outcome(JobStatus.CANCELLED, [cancelled], reason=stop.detail, record=held)
            if result.stopped or result.adapter_dir is None:
                return Outcome(None)
            submit = self._submit_router if isinstance(plan, router_training.RouterPlan) else self._submit_adapter
            submission = await submit(spec, result, base, dataset)
            if tracker:
                await asyncio.to_thread(tracker.log_metrics, result.metrics, result.steps)
            await _finish(tracker, JobStatus.COMPLETED)
            completed = TrainingCompleted(
                job_id=spec.job_id,
                adapter_artifact_id=submission.artifact_id,
                steps=result.steps,
                duration_seconds=time.monotonic() - began,
                metrics=result.metrics,
            )
            record: dict[str, Any] = {
                "steps": result.steps,
                "adapter_artifact_id": submission.artifact_id,
                **_held(spec, result),
            }
            return Outcome(JobStatus.COMPLETED, [submission, completed], record=record)
        except JobFailure as error:
            await _finish(tracker, JobStatus.FAILED)
            return failed(spec.job_id, error.error_type, str(error))
        except (torch.OutOfMemoryError, MemoryError) as error:
            await _finish(tracker, JobStatus.FAILED)
            return failed(spec.job_id, "out_of_memory", f"out of memory: {error}"[:2000])
        except (httpx.TransportError, StoreError, ConnectionError, Transient) as error:
            raise Transient(f"{type(error).__name__}: {error}") from error
        except Exception as error:
            log.exception("job %s failed", spec.job_id)
            await _finish(tracker, JobStatus.FAILED)
            return failed(spec.job_id, "training_error", f"{type(error).__name__}: {error}"[:2000])
        finally:
            await asyncio.to_thread(shutil.rmtree, work, True)

    async def _prepare(
        self, spec: StartTraining, work: Path
    ) -> tuple[VerifiedArtifact, dict[str, Any], engine.Plan | router_training.RouterPlan]:
        # The id names the job's checkpoint folder in the object store.
        if not JOB_ID.fullmatch(spec.job_id):
            raise JobSpecError(f"job id {spec.job_id!r} is not 1-128 letters, digits, '.', '_' or '-'")
        self._check_resources(spec)
        routing = spec.method == "snn_router"
        kind = ArtifactKind.EMBEDDING_MODEL if routing else ArtifactKind.BASE_MODEL
        base = await fetch_input(self.artifacts, spec.base_model, kind)
        try:
            dataset = await self.artifacts.find_version(ArtifactKind.DATASET, spec.dataset, str(spec.dataset_version))
        except ArtifactError as error:
            raise Transient(str(error)) from None
        if dataset is None:
            raise InputNotFound(f"dataset {spec.dataset!r} version {spec.dataset_version} is not registered")
        try:
            table = await asyncio.to_thread(read_dataset, self.settings, spec.dataset, spec.dataset_version)
        except DatasetNotFound as error:
            raise InputNotFound(str(error)) from None
        schema = data.detect_schema(table.column_names)
        if routing != (schema == "routing"):
            raise JobSpecError(f"a {schema} dataset does not train with method {spec.method}")
        if routing:
            router = router_training.RouterPlan(
                embedding_model=base.path,
                embedding_model_id=base.id,
                rows=table.to_pylist(),
                spec=spec.router or RouterSpec(),
                hyperparameters=spec.hyperparameters,
                eval_split=spec.eval_split,
                output_dir=work,
            )
            return base, dataset, router
        plugins = load_plugins(spec.plugins, spec.method)
        resume_from = await Checkpoints(self.store, spec.job_id, self.settings.trainer_keep_checkpoints).restore(work)
        plan = engine.Plan(
            method=spec.method,
            schema=schema,
            base_model=base.path,
            rows=table.to_pylist(),
            hyperparameters=spec.hyperparameters,
            adapter=spec.adapter,
            quantization=spec.quantization,
            eval_split=spec.eval_split,
            output_dir=work,
            resume_from=resume_from,
            plugins=plugins,
            checkpoint_every=self.settings.trainer_checkpoint_every_steps,
            progress_every_steps=self.settings.trainer_progress_every_steps,
            progress_every_s=self.settings.trainer_progress_every_s,
            exact_match_max_tokens=self.settings.trainer_exact_match_max_tokens,
            ranks=spec.resources.ranks,
            zero_stage=spec.resources.zero_stage,
        )
        return base, dataset, plan

    def _check_resources(self, spec: StartTraining) -> None:
        """What the job asks for, against what this worker has: its ranks all run here."""
        resources, capabilities = spec.resources, detect()
        if spec.method == "snn_router" and resources.ranks > 1:
            raise JobSpecError("a snn_router job trains in one process: resources.workers × devices_per_worker = 1")
        if resources.zero_stage and capabilities.device != "cuda":
            raise JobSpecError(f"DeepSpeed ZeRO-{resources.zero_stage} needs CUDA GPUs; this worker has none")
        if capabilities.device == "cuda" and resources.ranks > capabilities.gpus:
            raise JobSpecError(f"the job asks for {resources.ranks} GPUs; this worker has {capabilities.gpus}")
        if capabilities.device == "cpu" and resources.ranks > self.settings.trainer_max_cpu_ranks:
            raise JobSpecError(
                f"the job asks for {resources.ranks} processes; this worker runs at most"
                f" {self.settings.trainer_max_cpu_ranks} (MODELOPS_TRAINER_MAX_CPU_RANKS)"
            )

    async def _submit_adapter(
        self, spec: StartTraining, result: engine.Result, base: VerifiedArtifact, dataset: dict[str, Any]
    ) -> ArtifactSubmitted:
        assert result.adapter_dir is not None
        name = f"{base.name}-{spec.suffix or spec.method}"
        await asyncio.to_thread(
            write_card,
            result.adapter_dir,
            name=name,
            spec=spec,
            base=base.record,
            dataset=dataset,
            metrics=result.metrics,
            capabilities=result.capabilities,
        )
        parents = [(base.id, LineageRelation.TRAINED_FROM), (dataset["id"], LineageRelation.FINE_TUNED_ON)]
        metadata = {"method": spec.method, "quantization": spec.quantization, "base_model": base.id}
        return await self._submission(spec, result, ArtifactKind.ADAPTER, name, parents, metadata)

    async def _submit_router(
        self, spec: StartTraining, result: engine.Result, embedder: VerifiedArtifact, dataset: dict[str, Any]
    ) -> ArtifactSubmitted:
        assert result.adapter_dir is not None
        name = spec.suffix or f"{dataset['name']}-router"
        await asyncio.to_thread(
            write_router_card,
            result.adapter_dir,
            name=name,
            spec=spec,
            embedder=embedder.record,
            dataset=dataset,
            metrics=result.metrics,
        )
        config = snn_router.load(result.adapter_dir).config
        parents = [(embedder.id, LineageRelation.EMBEDDED_WITH), (dataset["id"], LineageRelation.TRAINED_ON)]
        metadata = {
            "method": spec.method,
            "labels": list(config.labels),
            "embedding_model": embedder.id,
            "encoding": config.encoding,
            "min_margin": config.min_margin,
            "fallback": config.fallback,
        }
        return await self._submission(spec, result, ArtifactKind.ROUTER, name, parents, metadata)

    async def _submission(
        self,
        spec: StartTraining,
        result: engine.Result,
        kind: ArtifactKind,
        name: str,
        parents: list[tuple[str, LineageRelation]],
        metadata: dict[str, Any],
    ) -> ArtifactSubmitted:
        """The job's output directory stored under its derived artifact id, and its submission to the registry."""
        assert result.adapter_dir is not None
        artifact_id = adapter_artifact_id(spec.job_id, kind.value)
        prefix = f"artifacts/{artifact_id}"
        files = await upload_directory(self.store, result.adapter_dir, prefix)
        return ArtifactSubmitted(
            artifact_id=artifact_id,
            kind=kind,
            name=name,
            uri=self.store.url_of(prefix),
            files=files,
            parents=[ParentRef(artifact_id=parent, relation=relation) for parent, relation in parents],
            job_id=spec.job_id,
            metrics=result.metrics,
            created_by=spec.submitted_by,
            metadata=metadata,
        )


class _JobHooks:
    """Training news from the worker thread, published in order (each publish awaited before training goes on)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        runner: JobRunner,
        spec: StartTraining,
        cause: Envelope,
        worker: str,
        stop: StopSignal,
        tracker: Tracker | None,
    ) -> None:
        self.loop = loop
        self.runner = runner
        self.spec = spec
        self.cause = cause
        self.worker = worker
        self.stop = stop
        self.tracker = tracker
        self.checkpoints = Checkpoints(runner.store, spec.job_id, runner.settings.trainer_keep_checkpoints)

    def started(self, total_steps: int, resumed_from_step: int) -> None:
        self._publish(
            TrainingStarted(
                job_id=self.spec.job_id,
                worker=self.worker,
                total_steps=total_steps,
                resumed_from_step=resumed_from_step,
            )
        )

    def progressed(self, progress: Progress) -> None:
        self._publish(TrainingProgressed(job_id=self.spec.job_id, **vars(progress)))
        TOKENS_PER_SECOND.labels(self.spec.method).observe(progress.tokens_per_second)
        if self.tracker:
            self.tracker.log_metrics(
                {
                    "loss": progress.loss,
                    "learning_rate": progress.learning_rate,
                    "tokens_per_second": progress.tokens_per_second,
                },
                progress.step,
            )

    def checkpointed(self, step: int, directory: Path) -> None:
        uri = asyncio.run_coroutine_threadsafe(self.checkpoints.save(step, directory), self.loop).result()
        self._publish(TrainingCheckpointed(job_id=self.spec.job_id, step=step, uri=uri))

    def stop_reason(self) -> str | None:
        return self.stop.reason()

    def _publish(self, message: Message) -> None:
        publish = self.runner.bus.publish(message, correlation_id=self.spec.job_id, causation=self.cause)
        try:
            asyncio.run_coroutine_threadsafe(publish, self.loop).result(PUBLISH_TIMEOUT_S)
        except Exception:
            # Progress is advisory; a broker hiccup must not cost the training run. The outcome goes via the outbox.
            log.exception("could not publish %s for job %s", message.type, self.spec.job_id)


def _train(plan: engine.Plan | router_training.RouterPlan, hooks: _JobHooks) -> engine.Result:
    if isinstance(plan, router_training.RouterPlan):
        return router_training.run(plan, hooks)
    # DeepSpeed wants the environment torchrun gives (ranks, rendezvous) even for one process.
    return distributed.launch(plan, hooks) if plan.ranks > 1 or plan.zero_stage else engine.run(plan, hooks)


def _held(spec: StartTraining, result: engine.Result) -> dict[str, int]:
    """What the job's usage needs from it (modelops_shared.jobs.usage): GPUs held, tokens trained on."""
    gpus = spec.resources.ranks if result.capabilities.device == "cuda" else 0
    return {"ranks": spec.resources.ranks, "gpus": gpus, "tokens": result.tokens}


def _tracked_params(spec: StartTraining, base: VerifiedArtifact, dataset: dict[str, Any]) -> dict[str, Any]:
    return {
        "method": spec.method,
        "quantization": spec.quantization,
        "base_model": base.id,
        "dataset": f"{dataset['name']}@{dataset['version']}",
        **(
            {f"router_{k}": v for k, v in (spec.router or RouterSpec()).model_dump().items()}
            if spec.method == "snn_router"
            else {f"lora_{k}": v for k, v in spec.adapter.model_dump().items()}
        ),
        **spec.hyperparameters.model_dump(),
    }


async def _finish(tracker: Tracker | None, status: JobStatus) -> None:
    if tracker:
        await asyncio.to_thread(tracker.finish, status)
