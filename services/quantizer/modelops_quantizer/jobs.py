"""One quantization job from command to outcome: fetch and verify the model and adapter, merge them, convert to an
F16 GGUF and measure it (the reference), then make, measure and store each asked format on the worker thread.

Each finished format leaves a record in the object store (`quantization/<job id>/<format>.json`), so a job resumed
after its worker died makes only the formats still missing. The outcome's events (one ArtifactSubmitted per format,
then QuantizationCompleted; or QuantizationFailed / QuantizationCancelled) are returned, not published: the job
consumer records them with the job's end in one transaction (outbox).
Produces directly: QuantizationStarted, QuantizationProgressed (quantization.events.v1).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import tempfile
import time
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelops_contracts import (
    GPU_FORMATS,
    ArtifactKind,
    ArtifactSubmitted,
    CancelQuantization,
    Envelope,
    FileDigest,
    JobStatus,
    LineageRelation,
    ParentRef,
    QuantizationCancelled,
    QuantizationCompleted,
    QuantizationFailed,
    QuantizationFormat,
    QuantizationProgressed,
    QuantizationStarted,
    QuantizedOutput,
    StartQuantization,
    quantization_warnings,
)
from modelops_contracts.catalog import QUANTIZATION_COMMANDS
from modelops_shared.artifact_upload import upload_directory
from modelops_shared.artifacts import ArtifactClient, VerifiedArtifact
from modelops_shared.bus import Bus
from modelops_shared.jobs import (
    InputUnusable,
    JobCommands,
    Outcome,
    StopSignal,
    fetch_input,
    outcome_of_error,
    publish_progress,
)
from modelops_shared.storage import ObjectNotFound, ObjectStore

from . import compressing, merging, quality, toolchain
from .domain import ConversionFailed
from .settings import QuantizerSettings

GGUF_NAME = "model.gguf"

QUANTIZATION_JOBS = JobCommands(
    topic=QUANTIZATION_COMMANDS,
    start=StartQuantization,
    cancel=CancelQuantization,
    failed_event=lambda job_id, error_type, reason: QuantizationFailed(
        job_id=job_id, reason=reason, error_type=error_type
    ),
    cancelled_event=lambda job_id, reason: QuantizationCancelled(job_id=job_id, reason=reason),
)


def output_artifact_id(job_id: str, fmt: QuantizationFormat) -> str:
    """Derived from the job and format alone, so a resumed or redelivered job submits the same artifacts."""
    return f"quantized-{hashlib.sha256(f'quantized:{job_id}:{fmt}'.encode()).hexdigest()[:24]}"


@dataclass(frozen=True)
class Inputs:
    base: VerifiedArtifact
    adapter: VerifiedArtifact | None
    name: str


@dataclass(frozen=True)
class Reference:
    """The merged model, and when a GGUF format is asked for, as an F16 GGUF with its measured quality: what every
    GGUF format is compared with (llm-compressor's formats are measured against the merged model by its script)."""

    merged: Path
    f16: Path | None
    quality: quality.Quality | None
    parameters: int


@dataclass(frozen=True)
class Made:
    """One format stored in the object store, as its record there says."""

    artifact_id: str
    files: list[FileDigest]
    metrics: dict[str, float]

    def to_json(self) -> bytes:
        files = [f.model_dump() for f in self.files]
        return json.dumps({"artifact_id": self.artifact_id, "files": files, "metrics": self.metrics}).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Made:
        data = json.loads(raw)
        return cls(data["artifact_id"], [FileDigest(**f) for f in data["files"]], data["metrics"])


class JobRunner:
    def __init__(
        self, settings: QuantizerSettings, store: ObjectStore, bus: Bus, artifacts: ArtifactClient, executor: Executor
    ) -> None:
        self.settings = settings
        self.store = store
        self.bus = bus
        self.artifacts = artifacts
        self.executor = executor

    async def run(self, spec: StartQuantization, cause: Envelope, stop: StopSignal, worker: str) -> Outcome:
        """Quantize the job to an outcome; raises Transient when the infrastructure, not the job, is at fault."""
        began = time.monotonic()
        work = self.settings.work_dir / "jobs" / hashlib.sha256(spec.job_id.encode()).hexdigest()[:32]
        try:
            if gpu := [fmt for fmt in spec.formats if fmt in GPU_FORMATS]:
                compressing.check_available(self.settings, gpu)  # a CPU worker fails these at once
            inputs = await self._inputs(spec)
            made = {fmt: record for fmt in spec.formats if (record := await self._made_before(spec.job_id, fmt))}
            started = QuantizationStarted(job_id=spec.job_id, worker=worker, formats=spec.formats, resumed=list(made))
            await publish_progress(self.bus, started, spec.job_id, cause)
            pending = [fmt for fmt in spec.formats if fmt not in made]
            if pending:
                await self._progress(spec, cause, "converting", None, len(made))
                gguf = any(fmt not in GPU_FORMATS for fmt in pending)
                reference = await self._in_thread(self._reference, inputs, work, gguf)
                for fmt in pending:
                    if stop.reason() == "cancelled":
                        return QUANTIZATION_JOBS.cancelled(spec.job_id, stop.detail)
                    if stop.reason():
                        return Outcome(None)  # handed off: the next owner resumes from the stored formats
                    await self._progress(spec, cause, "quantizing", fmt, len(made))
                    path, metrics = await self._in_thread(self._make, fmt, inputs, reference, work)
                    await self._progress(spec, cause, "uploading", fmt, len(made))
                    made[fmt] = await self._store(spec.job_id, fmt, path, metrics)
            return self._completed(spec, inputs, made, time.monotonic() - began)
        except Exception as error:
            return outcome_of_error(QUANTIZATION_JOBS, spec.job_id, error, error_type="quantization_error")
        finally:
            await asyncio.to_thread(shutil.rmtree, work, True)

    async def _inputs(self, spec: StartQuantization) -> Inputs:
        base = await fetch_input(self.artifacts, spec.model, ArtifactKind.BASE_MODEL)
        adapter = await fetch_input(self.artifacts, spec.adapter, ArtifactKind.ADAPTER) if spec.adapter else None
        if adapter is not None and (trained_on := adapter.record.get("metadata", {}).get("base_model")) != base.id:
            raise InputUnusable(f"adapter {adapter.id} was trained on {trained_on}, not on {base.id}")
        name = spec.name or (f"{base.name}-{adapter.name}" if adapter else base.name)
        return Inputs(base, adapter, name)

    def _reference(self, inputs: Inputs, work: Path, gguf: bool) -> Reference:
        """Merge, and for GGUF formats convert to F16 and measure it (worker thread)."""
        work.mkdir(parents=True, exist_ok=True)
        merged = inputs.base.path
        if inputs.adapter is not None:
            merged = merging.merge_adapter(inputs.base.path, inputs.adapter.path, work / "merged")
        parameters = merging.parameter_count(merged)
        if not gguf:
            return Reference(merged, None, None, parameters)
        f16 = work / "F16.gguf"
        try:
            toolchain.convert_model(merged, f16)
        except toolchain.ToolchainError as error:
            raise ConversionFailed(str(error)) from None
        return Reference(merged, f16, self._measure(f16), parameters)

    def _make(
        self, fmt: QuantizationFormat, inputs: Inputs, reference: Reference, work: Path
    ) -> tuple[Path, dict[str, float]]:
        """One format as a folder holding its single GGUF (or llm-compressor's checkpoint), and its metrics against
        the reference (worker thread)."""
        folder = work / str(fmt)
        if fmt in GPU_FORMATS:
            with tempfile.NamedTemporaryFile("w", suffix=".txt") as heldout:
                heldout.write(quality.heldout_text())
                heldout.flush()
                return folder, compressing.compress(self.settings, reference.merged, folder, fmt, Path(heldout.name))
        # _reference made them for GGUF formats.
        assert reference.f16 is not None
        assert reference.quality is not None
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / GGUF_NAME
        try:
            if fmt is QuantizationFormat.F16:
                shutil.copyfile(reference.f16, path)
                measured = reference.quality
            elif fmt is QuantizationFormat.LORA_F16:
                measured = self._lora(inputs, path, work)
            else:
                toolchain.quantize(reference.f16, path, fmt, self.settings.quantizer_threads)
                measured = self._measure(path)
        except toolchain.ToolchainError as error:
            raise ConversionFailed(str(error)) from None
        size, f16_size = path.stat().st_size, reference.f16.stat().st_size
        return folder, {
            "perplexity": measured.perplexity,
            "perplexity_reference": reference.quality.perplexity,
            "perplexity_change": measured.perplexity / reference.quality.perplexity - 1.0,
            "perplexity_tokens": float(measured.scored_tokens),
            "size_bytes": float(size),
            "size_ratio_f16": size / f16_size,
            "tokens_per_second": measured.tokens_per_second,
            "tokens_per_second_f16": reference.quality.tokens_per_second,
            "parameters": float(reference.parameters),
        }

    def _lora(self, inputs: Inputs, path: Path, work: Path) -> quality.Quality:
        """The adapter alone as a GGUF LoRA, measured applied at run time over the base's own F16 GGUF: it must match
        the merged model's perplexity."""
        if inputs.adapter is None:
            raise InputUnusable("LORA_F16 exports an adapter: name one")
        base_f16 = work / "base-F16.gguf"
        toolchain.convert_model(inputs.base.path, base_f16)
        toolchain.convert_lora(inputs.adapter.path, inputs.base.path, path)
        return self._measure(base_f16, lora=path)

    def _measure(self, model: Path, lora: Path | None = None) -> quality.Quality:
        return quality.measure(
            model,
            quality.heldout_text(),
            n_ctx=self.settings.quantizer_perplexity_context,
            threads=self.settings.quantizer_threads,
            speed_tokens=self.settings.quantizer_speed_tokens,
            lora=lora,
        )

    async def _made_before(self, job_id: str, fmt: QuantizationFormat) -> Made | None:
        try:
            return Made.from_json(await self.store.get(_record_key(job_id, fmt)))
        except ObjectNotFound:
            return None

    async def _store(self, job_id: str, fmt: QuantizationFormat, folder: Path, metrics: dict[str, float]) -> Made:
        """Upload the format's folder, then its record: a record exists only for a format wholly stored."""
        artifact_id = output_artifact_id(job_id, fmt)
        made = Made(artifact_id, await upload_directory(self.store, folder, f"artifacts/{artifact_id}"), metrics)
        await self.store.put(_record_key(job_id, fmt), made.to_json())
        return made

    def _completed(
        self, spec: StartQuantization, inputs: Inputs, made: dict[QuantizationFormat, Made], duration: float
    ) -> Outcome:
        submissions = [self._submission(spec, inputs, fmt, made[fmt]) for fmt in spec.formats]
        outputs = [
            QuantizedOutput(format=fmt, artifact_id=made[fmt].artifact_id, metrics=made[fmt].metrics)
            for fmt in spec.formats
        ]
        completed = QuantizationCompleted(job_id=spec.job_id, outputs=outputs, duration_seconds=duration)
        record = {"outputs": {str(fmt): made[fmt].artifact_id for fmt in spec.formats}}
        return Outcome(JobStatus.COMPLETED, [*submissions, completed], record=record)

    def _submission(
        self, spec: StartQuantization, inputs: Inputs, fmt: QuantizationFormat, made: Made
    ) -> ArtifactSubmitted:
        parents = [ParentRef(artifact_id=inputs.base.id, relation=LineageRelation.QUANTIZED_FROM)]
        if inputs.adapter is not None:
            parents.append(ParentRef(artifact_id=inputs.adapter.id, relation=LineageRelation.MERGED_FROM))
        metadata: dict[str, Any] = {
            "format": str(fmt),
            "quantization": str(fmt),
            "role": "lora" if fmt is QuantizationFormat.LORA_F16 else "model",
            "base_model": inputs.base.id,
            "adapter": inputs.adapter.id if inputs.adapter else None,
            "architecture": inputs.base.record.get("metadata", {}).get("architecture", "llama"),
            "perplexity_text": "modelops_quantizer/heldout.txt",
            "warnings": quantization_warnings(spec.formats, int(made.metrics["parameters"])),
        }
        if fmt in GPU_FORMATS:  # compressed-tensors safetensors, served by vLLM
            metadata |= {"serving": "vllm", "perplexity_context": compressing.PERPLEXITY_WINDOW}
        else:
            metadata |= {
                "serving": "llama.cpp",
                "llama_cpp": toolchain.llama_cpp_version(),
                "perplexity_context": self.settings.quantizer_perplexity_context,
            }
        chat_template = inputs.base.record.get("metadata", {}).get("chat_template")
        if chat_template is not None:
            metadata["chat_template"] = chat_template
        return ArtifactSubmitted(
            artifact_id=made.artifact_id,
            kind=ArtifactKind.QUANTIZED_MODEL,
            name=f"{inputs.name}-{str(fmt).lower()}",
            uri=self.store.url_of(f"artifacts/{made.artifact_id}"),
            files=made.files,
            parents=parents,
            job_id=spec.job_id,
            metrics=made.metrics,
            created_by=spec.submitted_by,
            metadata=metadata,
        )

    async def _in_thread(self, function: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor, function, *args)

    async def _progress(
        self, spec: StartQuantization, cause: Envelope, stage: str, fmt: QuantizationFormat | None, done: int
    ) -> None:
        event = QuantizationProgressed(job_id=spec.job_id, stage=stage, format=fmt, done=done, total=len(spec.formats))
        await publish_progress(self.bus, event, spec.job_id, cause)


def _record_key(job_id: str, fmt: QuantizationFormat) -> str:
    return f"quantization/{hashlib.sha256(job_id.encode()).hexdigest()[:32]}/{fmt}.json"
