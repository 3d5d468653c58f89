# Generated from sdk/modelops_sdk/_async/client.py by `make sdk-models`; do not edit.
"""The client: one resource object per area of the gateway's API. `AsyncClient` awaits each call
(`await AsyncClient(url, api_key).datasets.page()`); `Client`, generated from it, blocks."""

from __future__ import annotations

import json

# Only for asyncio.sleep, which unasync turns into time.sleep in the generated twin.
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from time import monotonic
from typing import Any, Self

import httpx

from ..compare import Comparison, compare, read_items
from ..errors import ApiError, EvaluationFailed, ImportFailed, IndexingFailed, QuantizationFailed
from ..events import JobEvent
from ..http import DEFAULT_TIMEOUT
from ..models import (
    AnswerView,
    ApiKeyView,
    ArtifactAccepted,
    ArtifactFile,
    ArtifactPage,
    ArtifactPromoted,
    ArtifactView,
    BudgetView,
    CollectionView,
    CompatibilityView,
    CreatedApiKey,
    DatasetPage,
    DatasetRows,
    DatasetView,
    DeploymentAccepted,
    DeploymentRemoval,
    DeploymentStatus,
    DeploymentView,
    DocumentView,
    EvaluationJobView,
    FeedbackRow,
    Flow,
    GroupState,
    Identity,
    IndexJobView,
    JobAccepted,
    JobPage,
    JobStatus,
    JobSummary,
    JobView,
    KafkaMessage,
    LineageGraph,
    ListingPage,
    ListingView,
    ModelImportStatus,
    ModelImportView,
    PromotionRecord,
    QuantizationFormat,
    QuantizationJobView,
    QueryResult,
    RatingView,
    Replayed,
    RouterStats,
    RouteTarget,
    SearchResults,
    SigningKey,
    TopicState,
    TrainingJobRequest,
    UsageReport,
    VersionList,
)
from ..payloads import artifact_fields, artifact_parts, chat_body, chat_delta, file_part, params, training_body
from ..retrying import RetryPolicy
from . import events
from .http import SyncHttp

Json = dict[str, Any]
# Module-level names: inside a resource class, `list` is its own method.
JsonList = list[Json]
ApiKeyList = list[ApiKeyView]
PathList = list[Path]
FileList = list[ArtifactFile]
KeyList = list[SigningKey]
PromotionList = list[PromotionRecord]
DeploymentList = list[DeploymentView]
CollectionList = list[CollectionView]
DocumentList = list[DocumentView]
FeedbackList = list[FeedbackRow]
JobSummaryList = list[JobSummary]
TopicList = list[TopicState]
GroupList = list[GroupState]
MessageList = list[KafkaMessage]
ReplayedList = list[Replayed]


class ApiKeys:
    def __init__(self, http: SyncHttp) -> None:
        self.http = http

    def me(self) -> Identity:
        """The calling key's id, name and role."""
        return self.http.call(Identity, "GET", "/v1/api-keys/me")

    def create(self, name: str, role: str, rate_limit: str | None = None) -> CreatedApiKey:
        body = params(name=name, role=role, rate_limit=rate_limit)
        return self.http.call(CreatedApiKey, "POST", "/v1/api-keys", json=body, creates=True)

    def list(self) -> ApiKeyList:
        return self.http.call(ApiKeyList, "GET", "/v1/api-keys")

    def revoke(self, key_id: str) -> None:
        self.http.request("DELETE", f"/v1/api-keys/{key_id}")


class Datasets:
    def __init__(self, http: SyncHttp) -> None:
        self.http = http

    def upload(self, name: str, schema: str, path: Path) -> DatasetView:
        """A new version of `name` from a .jsonl/.csv/.parquet file (the first upload creates the dataset)."""
        fields = {"name": name, "schema": schema}
        return self.http.call(DatasetView, "POST", "/v1/datasets", data=fields, parts=file_part(path), creates=True)

    def page(self, cursor: str | None = None, limit: int | None = None) -> DatasetPage:
        query = params(cursor=cursor, limit=limit)
        return self.http.call(DatasetPage, "GET", "/v1/datasets", params=query)

    def list(self, limit: int | None = None) -> Iterator[DatasetView]:
        """Every dataset, fetching page after page as the iteration goes."""
        cursor: str | None = None
        while True:
            page = self.page(cursor, limit)
            for item in page.data:
                yield item
            if not (cursor := page.next_cursor):
                return

    def show(self, name: str, version: int | None = None) -> DatasetView:
        query = params(version=version)
        return self.http.call(DatasetView, "GET", f"/v1/datasets/{name}", params=query)

    def versions(self, name: str, limit: int | None = None) -> VersionList:
        query = params(limit=limit)
        return self.http.call(VersionList, "GET", f"/v1/datasets/{name}/versions", params=query)

    def rows(self, name: str, version: int | None = None, limit: int | None = None, offset: int = 0) -> DatasetRows:
        query = params(version=version, limit=limit, offset=offset)
        return self.http.call(DatasetRows, "GET", f"/v1/datasets/{name}/rows", params=query)

    def query(self, name: str, sql: str, version: int | None = None) -> QueryResult:
        body = params(sql=sql, version=version)
        return self.http.call(QueryResult, "POST", f"/v1/datasets/{name}/query", json=body)


class Artifacts:
    def __init__(self, http: SyncHttp) -> None:
        self.http = http

    def import_dir(
        self, directory: Path, *, kind: str, name: str, version: str | None = None, parents: list[str] | None = None
    ) -> ArtifactAccepted:
        """Upload every file under `directory`; the registry verifies and signs them (see `wait_registered`)."""
        fields = artifact_fields(kind, name, version, parents)
        parts = artifact_parts(directory)
        return self.http.call(ArtifactAccepted, "POST", "/v1/artifacts", data=fields, parts=parts, creates=True)

    def page(self, cursor: str | None = None, limit: int | None = None, **filters: str | None) -> ArtifactPage:
        query = params(cursor=cursor, limit=limit, **filters)
        return self.http.call(ArtifactPage, "GET", "/v1/artifacts", params=query)

    def list(
        self, *, kind: str | None = None, stage: str | None = None, name: str | None = None, limit: int | None = None
    ) -> Iterator[ArtifactView]:
        """Every matching artifact, newest first, page after page."""
        cursor: str | None = None
        while True:
            page = self.page(cursor, limit, kind=kind, stage=stage, name=name)
            for artifact in page.data:
                yield artifact
            if not (cursor := page.next_cursor):
                return

    def show(self, artifact_id: str) -> ArtifactView:
        return self.http.call(ArtifactView, "GET", f"/v1/artifacts/{artifact_id}")

    def wait_registered(self, artifact_id: str, timeout_s: float = 60, poll_s: float = 0.2) -> ArtifactView:
        """The artifact once registered; an ApiError if the registry rejected it or after `timeout_s`."""
        deadline = monotonic() + timeout_s
        while True:
            try:
                return self.show(artifact_id)
            except ApiError as error:
                # Until the registry has the submission it knows nothing of the id: a 404 that is not a rejection.
                pending = error.status == 404 and error.extensions.get("submission_status") != "rejected"
                if not pending or monotonic() > deadline:
                    raise
            time.sleep(poll_s)

    def lineage(self, artifact_id: str) -> LineageGraph:
        return self.http.call(LineageGraph, "GET", f"/v1/artifacts/{artifact_id}/lineage")

    def files(self, artifact_id: str) -> FileList:
        return self.http.call(FileList, "GET", f"/v1/artifacts/{artifact_id}/files")

    def download(self, artifact_id: str, target: Path) -> PathList:
        """Every file of the artifact under `target`, at its relative path."""
        listed = self.files(artifact_id)
        for file in listed:
            self.http.download(f"/v1/artifacts/{artifact_id}/files/{file.path}", target / file.path)
        return [target / file.path for file in listed]

    def bundle(self, artifact_id: str) -> Json:
        return self.http.call(Json, "GET", f"/v1/artifacts/{artifact_id}/bundle")

    def signing_keys(self) -> KeyList:
        """The registry's public signing keys (PEM), old ones included."""
        return self.http.call(KeyList, "GET", "/v1/keys")

    def promotions(self, artifact_id: str) -> PromotionList:
        return self.http.call(PromotionList, "GET", f"/v1/artifacts/{artifact_id}/promotions")

    def promote(self, artifact_id: str, to_stage: str, reason: str) -> ArtifactPromoted:
        body = {"to_stage": to_stage, "reason": reason}
        path = f"/v1/artifacts/{artifact_id}/promotions"
        return self.http.call(ArtifactPromoted, "POST", path, json=body, creates=True)


class Models:
    """Model files imported as signed artifacts: a GGUF becomes a quantized_model and a base_model converted from it."""

    def __init__(self, http: SyncHttp, artifacts: Artifacts) -> None:
        self.http = http
        self.artifacts = artifacts

    def import_gguf(self, path: Path, *, name: str | None = None, source: str | None = None) -> ModelImportView:
        """Upload a GGUF; the same file again answers its earlier import. Follow it with `wait_import`."""
        fields = {key: value for key, value in {"name": name, "source": source}.items() if value is not None}
        return self.http.call(ModelImportView, "POST", "/v1/models/gguf", data=fields, parts=file_part(path))

    def show_import(self, import_id: str) -> ModelImportView:
        return self.http.call(ModelImportView, "GET", f"/v1/models/imports/{import_id}")

    def wait_import(self, import_id: str, timeout_s: float = 600, poll_s: float = 0.5) -> ArtifactView:
        """The imported base model once registered; ImportFailed with the trainer's reason, TimeoutError after
        `timeout_s`."""
        deadline = monotonic() + timeout_s
        while (view := self.show_import(import_id)).status == ModelImportStatus.pending:
            if monotonic() > deadline:
                raise TimeoutError(f"import {import_id} is still pending after {timeout_s:g} s")
            time.sleep(poll_s)
        if view.status == ModelImportStatus.failed:
            raise ImportFailed(view.reason or "the import failed")
        return self.artifacts.wait_registered(view.base_model_artifact_id, max(deadline - monotonic(), poll_s))


class Jobs:
    def __init__(self, http: SyncHttp) -> None:
        self.http = http

    def train(self, request: TrainingJobRequest | None = None, **fields: Any) -> JobAccepted:
        """Queue a fine-tuning job: a TrainingJobRequest, or its fields as keyword arguments."""
        body = training_body(request, fields)
        return self.http.call(JobAccepted, "POST", "/v1/jobs/training", json=body, creates=True)

    def page(
        self, cursor: str | None = None, limit: int | None = None, status: str | None = None, kind: str | None = None
    ) -> JobPage:
        query = params(cursor=cursor, limit=limit, status=status, kind=kind)
        return self.http.call(JobPage, "GET", "/v1/jobs", params=query)

    def list(
        self, *, status: str | None = None, kind: str | None = None, limit: int | None = None
    ) -> Iterator[JobView]:
        """Every matching job, newest first, page after page."""
        cursor: str | None = None
        while True:
            page = self.page(cursor, limit, status, kind)
            for item in page.data:
                yield item
            if not (cursor := page.next_cursor):
                return

    def show(self, job_id: str) -> JobView:
        return self.http.call(JobView, "GET", f"/v1/jobs/{job_id}")

    def cancel(self, job_id: str, reason: str = "") -> JobView:
        body = {"reason": reason}
        return self.http.call(JobView, "POST", f"/v1/jobs/{job_id}/cancel", json=body)

    def stream(self, job_id: str, last_event_id: int | None = None) -> Iterator[JobEvent]:
        """The job's events as they happen, resumed across dropped connections, ending after the terminal one."""
        return events.stream(self.http, job_id, last_event_id)

    def wait(self, job_id: str, on_event: Callable[[JobEvent], object] | None = None) -> JobView:
        """Follow the job to its end (calling `on_event` with each event); the finished job."""
        for event in self.stream(job_id):
            if on_event:
                on_event(event)
        return self.show(job_id)


class Quantizations:
    """Base models (with an adapter merged, or not) written as GGUF in llama.cpp's formats, each a signed
    quantized_model with its perplexity change, size and speed in its metrics."""

    def __init__(self, http: SyncHttp, artifacts: Artifacts) -> None:
        self.http = http
        self.artifacts = artifacts

    def submit(
        self,
        model: str,
        formats: Sequence[QuantizationFormat | str],
        *,
        adapter: str | None = None,
        name: str | None = None,
    ) -> QuantizationJobView:
        """Queue a quantization job; follow it with `wait`."""
        body = {"model": model, "adapter": adapter, "formats": [str(f) for f in formats], "name": name}
        return self.http.call(QuantizationJobView, "POST", "/v1/jobs/quantization", json=body, creates=True)

    def show(self, job_id: str) -> QuantizationJobView:
        return self.http.call(QuantizationJobView, "GET", f"/v1/jobs/quantization/{job_id}")

    def cancel(self, job_id: str, reason: str = "") -> QuantizationJobView:
        body = {"reason": reason}
        return self.http.call(QuantizationJobView, "POST", f"/v1/jobs/quantization/{job_id}/cancel", json=body)

    def wait(self, job_id: str, timeout_s: float = 1800, poll_s: float = 1.0) -> QuantizationJobView:
        """The job once completed and each output registered (signed); QuantizationFailed with the quantizer's reason
        when it failed or was cancelled, TimeoutError after `timeout_s`."""
        deadline = monotonic() + timeout_s
        while (view := self.show(job_id)).status in (JobStatus.queued, JobStatus.running):
            if monotonic() > deadline:
                raise TimeoutError(f"quantization job {job_id} is still {view.status.value} after {timeout_s:g} s")
            time.sleep(poll_s)
        if view.status != JobStatus.completed:
            reason = view.failure.reason if view.failure else view.status.value
            raise QuantizationFailed(f"quantization job {job_id} {view.status.value}: {reason}")
        for output in view.outputs:
            # The job's end and its outputs' registration travel on different topics: the registry may lag a moment.
            self.artifacts.wait_registered(output.artifact_id, timeout_s=max(deadline - monotonic(), 60))
        return view


class Evaluations:
    """Models, adapters and deployments scored on one version of a dataset: each run a signed eval_report (per-item
    answers and scores as Parquet, the aggregates in its metrics), which promotions can be gated on."""

    def __init__(self, http: SyncHttp, artifacts: Artifacts) -> None:
        self.http = http
        self.artifacts = artifacts

    def submit(
        self,
        suite: str,
        metrics: Sequence[str | Json],
        *,
        model: str | None = None,
        adapter: str | None = None,
        deployment: str | None = None,
        suite_version: int | None = None,
        seed: int = 0,
        max_items: int | None = None,
        max_new_tokens: int = 128,
        name: str | None = None,
    ) -> EvaluationJobView:
        """Queue an evaluation of `model` (with `adapter`), or of `deployment`; follow it with `wait`. A metric is a
        name (`"exact_match"`) or `{"name": …, "params": {…}}`."""
        body = {
            "model": model,
            "adapter": adapter,
            "deployment": deployment,
            "suite": suite,
            "suite_version": suite_version,
            "metrics": list(metrics),
            "seed": seed,
            "max_items": max_items,
            "max_new_tokens": max_new_tokens,
            "name": name,
        }
        return self.http.call(EvaluationJobView, "POST", "/v1/jobs/evaluation", json=body, creates=True)

    def show(self, job_id: str) -> EvaluationJobView:
        return self.http.call(EvaluationJobView, "GET", f"/v1/jobs/evaluation/{job_id}")

    def cancel(self, job_id: str, reason: str = "") -> EvaluationJobView:
        body = {"reason": reason}
        return self.http.call(EvaluationJobView, "POST", f"/v1/jobs/evaluation/{job_id}/cancel", json=body)

    def wait(self, job_id: str, timeout_s: float = 1800, poll_s: float = 1.0) -> EvaluationJobView:
        """The job once completed and its report registered (signed); EvaluationFailed with the evaluator's reason
        when it failed or was cancelled, TimeoutError after `timeout_s`."""
        deadline = monotonic() + timeout_s
        while (view := self.show(job_id)).status in (JobStatus.queued, JobStatus.running):
            if monotonic() > deadline:
                raise TimeoutError(f"evaluation job {job_id} is still {view.status.value} after {timeout_s:g} s")
            time.sleep(poll_s)
        if view.status != JobStatus.completed:
            reason = view.failure.reason if view.failure else view.status.value
            raise EvaluationFailed(f"evaluation job {job_id} {view.status.value}: {reason}")
        if view.report_id is not None:
            # The job's end and its report's registration travel on different topics: the registry may lag a moment.
            self.artifacts.wait_registered(view.report_id, timeout_s=max(deadline - monotonic(), 60))
        return view

    def report(self, ref: str, suite: str | None = None) -> ArtifactView:
        """The eval_report `ref` names: a report's id; or a model's or adapter's id, whose newest report on `suite`
        (of the model alone, for a model) is taken."""
        artifact = self.artifacts.show(ref)
        if artifact.kind.value == "eval_report":
            return artifact
        if suite is None:
            raise ValueError(f"{ref} is a {artifact.kind.value}: name the suite whose report to take")
        graph = self.artifacts.lineage(ref)
        children = {e.child_id for e in graph.descendants if e.parent_id == ref and e.relation == "evaluation_of"}
        reports = [self.artifacts.show(child) for child in sorted(children)]
        alone = artifact.kind.value != "adapter"
        mine = [
            report
            for report in reports
            if report.metadata.get("suite") == suite
            and (report.metadata.get("adapter") is None if alone else report.metadata.get("adapter") == ref)
        ]
        if not mine:
            raise ValueError(f"{ref} has no eval report on suite {suite!r}: run `modelops eval run` first")
        return max(mine, key=lambda report: report.created_at)

    def compare(self, a: str, b: str, suite: str | None = None, scratch: Path | None = None) -> Comparison:
        """Reports `a` and `b` (or the newest of each model or adapter on `suite`) side by side: the aggregates, a
        paired bootstrap interval of each difference, and the items where they disagree."""
        first, second = self.report(a, suite), self.report(b, suite)
        suites = {first.metadata.get("suite"), second.metadata.get("suite")}
        if len(suites) != 1:
            raise ValueError(f"{first.id} and {second.id} are reports on different suites: {sorted(map(str, suites))}")
        items = []
        for report in (first, second):
            target = (scratch or Path.cwd()) / report.id
            self.http.download(f"/v1/artifacts/{report.id}/files/items.parquet", target / "items.parquet")
            items.append(read_items(target / "items.parquet"))
        return compare(first.id, items[0], second.id, items[1], suite=str(suites.pop()))


class Deployments:
    def __init__(self, http: SyncHttp) -> None:
        self.http = http

    def create(
        self,
        name: str,
        base_model: str,
        adapters: Sequence[str] = (),
        *,
        routes: Mapping[str, Mapping[str, str] | RouteTarget] | None = None,
    ) -> DeploymentAccepted:
        """Serve `base_model` (an artifact id) with `adapters` under `name`; deploying a name again replaces it. A
        router takes `routes`: who answers each of its targets (`{"deployment": ..., "collection": ...}`)."""
        body: dict[str, Any] = {"name": name, "base_model": base_model, "adapters": list(adapters)}
        if routes is not None:
            body["routes"] = {
                label: RouteTarget.model_validate(route).model_dump(mode="json", exclude_none=True)
                for label, route in routes.items()
            }
        return self.http.call(DeploymentAccepted, "POST", "/v1/deployments", json=body, creates=True)

    def list(self) -> DeploymentList:
        return self.http.call(DeploymentList, "GET", "/v1/deployments")

    def show(self, name: str) -> DeploymentView:
        return self.http.call(DeploymentView, "GET", f"/v1/deployments/{name}")

    def delete(self, name: str) -> DeploymentRemoval:
        return self.http.call(DeploymentRemoval, "DELETE", f"/v1/deployments/{name}")

    def wait(
        self,
        name: str,
        adapters: Sequence[str] | None = None,
        timeout_s: float = 300,
        poll_s: float = 0.5,
        *,
        base_model: str | None = None,
    ) -> DeploymentView:
        """The deployment once `ready` or `failed` (check `status`); a TimeoutError after `timeout_s`. With
        `adapters` (and `base_model`, an artifact id), a deployment that still serves other adapters (or another
        model) is the one it replaces, and is waited past."""
        deadline = monotonic() + timeout_s
        while True:
            view = self.show(name)
            current = (adapters is None or list(view.adapter_ids or []) == list(adapters)) and (
                base_model is None or view.base_model_id == base_model
            )
            if view.status == DeploymentStatus.failed or (view.status == DeploymentStatus.ready and current):
                return view
            if monotonic() > deadline:
                raise TimeoutError(f"deployment {name} is still {view.status} after {timeout_s:g} s")
            time.sleep(poll_s)


class Rag:
    """Document collections answered by deployments: upload text, Markdown, HTML or PDF, index them into LanceDB by
    a job (each index a signed rag_index), search them hybrid, and ask a deployment with citations."""

    def __init__(self, http: SyncHttp, artifacts: Artifacts) -> None:
        self.http = http
        self.artifacts = artifacts

    def import_embedding_model(
        self, directory: Path, *, name: str = "all-MiniLM-L6-v2", version: str | None = None, timeout_s: float = 120
    ) -> ArtifactView:
        """A sentence-transformers directory imported as a signed embedding_model, once registered."""
        accepted = self.artifacts.import_dir(directory, kind="embedding_model", name=name, version=version)
        return self.artifacts.wait_registered(accepted.id, timeout_s)

    def create(self, name: str, *, embedding_model: str = "all-MiniLM-L6-v2", description: str = "") -> CollectionView:
        body = {"name": name, "embedding_model": embedding_model, "description": description}
        return self.http.call(CollectionView, "POST", "/v1/rag/collections", json=body, creates=True)

    def list(self) -> CollectionList:
        return self.http.call(CollectionList, "GET", "/v1/rag/collections")

    def show(self, name: str) -> CollectionView:
        return self.http.call(CollectionView, "GET", f"/v1/rag/collections/{name}")

    def delete(self, name: str) -> None:
        self.http.request("DELETE", f"/v1/rag/collections/{name}")

    def upload(self, name: str, path: Path) -> DocumentView:
        """A new version of the document named like the file (none when its bytes did not change: `unchanged`)."""
        path_ = f"/v1/rag/collections/{name}/documents"
        return self.http.call(DocumentView, "POST", path_, parts=file_part(path), creates=True)

    def documents(self, name: str) -> DocumentList:
        return self.http.call(DocumentList, "GET", f"/v1/rag/collections/{name}/documents")

    def index(self, name: str) -> IndexJobView:
        """Start the job that indexes the newest version of every document; follow it with `wait`."""
        return self.http.call(IndexJobView, "POST", f"/v1/rag/collections/{name}/index", creates=True)

    def show_job(self, job_id: str) -> IndexJobView:
        return self.http.call(IndexJobView, "GET", f"/v1/rag/index-jobs/{job_id}")

    def cancel(self, job_id: str) -> IndexJobView:
        return self.http.call(IndexJobView, "POST", f"/v1/rag/index-jobs/{job_id}/cancel")

    def wait(self, job_id: str, timeout_s: float = 1800, poll_s: float = 0.5) -> IndexJobView:
        """The job once it ended and its collection serves its index (the registry registered it); IndexingFailed if
        it failed or was cancelled, TimeoutError after `timeout_s`."""
        deadline = monotonic() + timeout_s
        while True:
            job = self.show_job(job_id)
            if job.status.value in ("failed", "cancelled"):
                raise IndexingFailed(f"index job {job_id} {job.status.value}: {(job.outcome or {}).get('reason', '')}")
            if job.status.value == "completed" and (self.show(job.collection)).index_id == job.index_id:
                return job
            if monotonic() > deadline:
                raise TimeoutError(f"index job {job_id} still {job.status.value} after {timeout_s} s")
            time.sleep(poll_s)

    def ingest(self, name: str, paths: Sequence[Path], timeout_s: float = 1800) -> IndexJobView:
        """Upload the files, index the collection, and wait for the index."""
        for path in paths:
            self.upload(name, path)
        job = self.index(name)
        return self.wait(job.id, timeout_s)

    def search(
        self, name: str, query: str, *, k: int = 10, filter: Json | None = None, mode: str = "hybrid"
    ) -> SearchResults:
        body = {"query": query, "k": k, "filter": filter, "mode": mode}
        return self.http.call(SearchResults, "POST", f"/v1/rag/collections/{name}/search", json=body)

    def ask(self, name: str, question: str, model: str, *, k: int = 4, max_tokens: int = 256) -> AnswerView:
        """The deployment's answer from the collection's passages, with citations ("I don't know" when none is
        relevant)."""
        body = {"question": question, "model": model, "k": k, "max_tokens": max_tokens}
        return self.http.call(AnswerView, "POST", f"/v1/rag/collections/{name}/answer", json=body)

    def ask_stream(self, name: str, question: str, model: str, *, k: int = 4, max_tokens: int = 256) -> Iterator[Json]:
        """The answer as events: `citations` (and the whole answer when the model was not asked), `delta`s, `done`."""
        body = {"question": question, "model": model, "k": k, "max_tokens": max_tokens, "stream": True}
        with self.http.stream("POST", f"/v1/rag/collections/{name}/answer", json=body) as response:
            for line in response.iter_lines():
                if line.startswith("data: "):
                    yield json.loads(line[6:])


class Marketplace:
    """Signed adapters and quantized models others made: search them, check one against your base model, install it
    as a deployment, rate it, download its verified files, or publish your own."""

    def __init__(self, http: SyncHttp) -> None:
        self.http = http

    def search(self, q: str | None = None, *, sort: str = "downloads", limit: int = 20, **filters: Any) -> ListingPage:
        """A page of listings: `q` full text; filters base_model, task, quantization, license, kind, rank,
        min_rating; sort by downloads, rating, recent or relevance."""
        query = params(q=q, sort=sort, limit=limit, **filters)
        return self.http.call(ListingPage, "GET", "/v1/marketplace/listings", params=query)

    def show(self, listing_id: str) -> ListingView:
        return self.http.call(ListingView, "GET", f"/v1/marketplace/listings/{listing_id}")

    def publish(self, artifact_id: str, title: str, **details: Any) -> ListingView:
        """List your artifact with a title and any of description, tasks, license, languages, examples."""
        body = {"artifact_id": artifact_id, "title": title, **details}
        return self.http.call(ListingView, "POST", "/v1/marketplace/listings", json=body, creates=True)

    def check(
        self, listing_id: str, *, base_model: str | None = None, deployment: str | None = None, canary: bool = False
    ) -> CompatibilityView:
        """Whether the listing works on that base model (or the one a deployment serves), with the reasons."""
        query = params(base_model=base_model, deployment=deployment, canary=str(canary).lower())
        path = f"/v1/marketplace/listings/{listing_id}/compatibility"
        return self.http.call(CompatibilityView, "GET", path, params=query)

    def install(self, listing_id: str, name: str, *, base_model: str | None = None) -> DeploymentAccepted:
        """Deploy the listing as `name` (an adapter on `base_model`, once compatible); follow it in deployments."""
        body = {"name": name, "base_model": base_model}
        path = f"/v1/marketplace/listings/{listing_id}/install"
        return self.http.call(DeploymentAccepted, "POST", path, json=body, creates=True)

    def rate(self, listing_id: str, stars: int, review: str = "") -> RatingView:
        body = {"stars": stars, "review": review}
        return self.http.call(RatingView, "POST", f"/v1/marketplace/listings/{listing_id}/ratings", json=body)

    def download(self, listing_id: str, target: Path) -> Path:
        """The listing's verified files as one zip at `target`."""
        self.http.download(f"/v1/marketplace/listings/{listing_id}/download", target)
        return target


class Console:
    """What the web console (/ui) shows, for scripts and terminals: jobs of every kind with their status, a job's
    flow across services (every message of it, in order, with the gaps and its trace), the broker's topics and
    consumer groups with their lag; for admins, a topic's latest messages, the dead letters and their replay."""

    def __init__(self, http: SyncHttp) -> None:
        self.http = http

    def jobs(self, kind: str | None = None, limit: int = 50) -> JobSummaryList:
        query = params(kind=kind, limit=limit)
        return self.http.call(JobSummaryList, "GET", "/v1/console/jobs", params=query)

    def flow(self, job_id: str) -> Flow:
        return self.http.call(Flow, "GET", f"/v1/console/flows/{job_id}")

    def topics(self) -> TopicList:
        return self.http.call(TopicList, "GET", "/v1/console/topics")

    def groups(self) -> GroupList:
        return self.http.call(GroupList, "GET", "/v1/console/groups")

    def messages(self, topic: str, limit: int = 20, partition: int | None = None) -> MessageList:
        query = params(limit=limit, partition=partition)
        return self.http.call(MessageList, "GET", f"/v1/console/topics/{topic}/messages", params=query)

    def dead_letters(self, limit: int = 50) -> MessageList:
        return self.http.call(MessageList, "GET", "/v1/console/dead-letters", params=params(limit=limit))

    def replay(self, topic: str, consumer: str | None = None, *, dry_run: bool = False) -> ReplayedList:
        """Publish `topic`'s dead letters (of `consumer` only, when given) again, after a fix; what was sent."""
        body = params(topic=topic, consumer=consumer, dry_run=dry_run)
        return self.http.call(ReplayedList, "POST", "/v1/console/dead-letters/replay", json=body)


class Usage:
    """What jobs and deployments used and cost, per key, job or deployment (yours; an admin's: anyone's), and the
    budgets that refuse jobs past them (admin)."""

    def __init__(self, http: SyncHttp) -> None:
        self.http = http

    def report(self, by: str = "key", *, key: str | None = None, limit: int = 100) -> UsageReport:
        query = params(by=by, key=key, limit=limit)
        return self.http.call(UsageReport, "GET", "/v1/usage", params=query)

    def budgets(self) -> list[BudgetView]:
        return self.http.call(list[BudgetView], "GET", "/v1/usage/budgets")

    def set_budget(self, key: str, amount: float) -> BudgetView:
        return self.http.call(BudgetView, "PUT", f"/v1/usage/budgets/{key}", json={"amount": amount})

    def remove_budget(self, key: str) -> None:
        self.http.request("DELETE", f"/v1/usage/budgets/{key}")


class Routers:
    """One model name in front of deployments and RAG collections: a spiking network trained on `{prompt, target}`
    rows picks who answers each chat completion. Train it (`train`), deploy it with a route per target
    (`deployments.create(..., routes=...)`), call it like any model, then correct its mistakes and retrain."""

    def __init__(self, http: SyncHttp) -> None:
        self.http = http

    def train(
        self,
        embedding_model: str,
        dataset: str,
        *,
        dataset_version: int | None = None,
        epochs: float = 40,
        learning_rate: float = 2e-3,
        suffix: str | None = None,
        **router: Any,
    ) -> JobAccepted:
        """A `snn_router` job over `embedding_model`'s sentence embeddings on a routing dataset; `router` sets the
        network (hidden, steps, encoding, threshold, min_margin, fallback, …). Follow it with `jobs.wait`."""
        fields: dict[str, Any] = {
            "base_model": embedding_model,
            "dataset": dataset,
            "dataset_version": dataset_version,
            "method": "snn_router",
            "hyperparameters": {"epochs": epochs, "learning_rate": learning_rate, "batch_size": 64},
            "suffix": suffix,
            "router": router or None,
        }
        body = training_body(None, {key: value for key, value in fields.items() if value is not None})
        return self.http.call(JobAccepted, "POST", "/v1/jobs/training", json=body, creates=True)

    def stats(self, name: str) -> RouterStats:
        return self.http.call(RouterStats, "GET", f"/v1/routers/{name}/stats")

    def correct(self, name: str, decision_id: str, prompt: str, target: str) -> Json:
        """Say `target` should have answered the decision (its `X-ModelOps-Route-Decision`) made on `prompt`."""
        body = {"prompt": prompt, "target": target}
        path = f"/v1/routers/{name}/decisions/{decision_id}/corrections"
        return self.http.call(Json, "POST", path, json=body)

    def feedback(self, name: str, limit: int = 10_000) -> FeedbackList:
        """The corrections as routing rows, to upload with the training rows for the next router."""
        return self.http.call(FeedbackList, "GET", f"/v1/routers/{name}/feedback", params={"limit": limit})


class Chat:
    """OpenAI's chat completions through the gateway, for a quick question; use the `openai` client for the rest."""

    def __init__(self, http: SyncHttp) -> None:
        self.http = http

    def ask(self, model: str, question: str, **sampling: Any) -> str:
        """The whole answer to one user message."""
        body = chat_body(model, question, sampling, stream=False)
        answer = self.http.call(Json, "POST", "/v1/chat/completions", json=body)
        return str(answer["choices"][0]["message"]["content"] or "")

    def stream(self, model: str, question: str, **sampling: Any) -> Iterator[str]:
        """The answer to one user message, piece by piece as the model writes it."""
        body = chat_body(model, question, sampling, stream=True)
        with self.http.stream("POST", "/v1/chat/completions", json=body) as response:
            for line in response.iter_lines():
                if (piece := chat_delta(line)) is not None:
                    yield piece


class Client:
    """The ModelOps gateway. Use it as a context manager, or close it when done."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        **httpx_options: Any,
    ) -> None:
        self.http = SyncHttp(
            base_url, api_key, timeout=httpx.Timeout(timeout), retry=retry or RetryPolicy(), **httpx_options
        )
        self.api_keys = ApiKeys(self.http)
        self.datasets = Datasets(self.http)
        self.artifacts = Artifacts(self.http)
        self.jobs = Jobs(self.http)
        self.models = Models(self.http, self.artifacts)
        self.quantizations = Quantizations(self.http, self.artifacts)
        self.evaluations = Evaluations(self.http, self.artifacts)
        self.deployments = Deployments(self.http)
        self.rag = Rag(self.http, self.artifacts)
        self.marketplace = Marketplace(self.http)
        self.routers = Routers(self.http)
        self.console = Console(self.http)
        self.usage = Usage(self.http)
        self.chat = Chat(self.http)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
