"""One index job from command to outcome: load the collection's verified embedding model, compare the documents
asked for with what the LanceDB table holds (by content hash), drop what is gone or changed, parse, chunk and embed
only what is new, refresh the full-text and vector indexes, and sign the result as a rag_index: a card naming the
exact table version, its documents and a digest of its rows, which every search verifies before reading it.

A job redelivered after its worker died picks up where it stopped: the documents it already wrote are held by the
table, and only the rest are embedded. The outcome's events (ArtifactSubmitted, then IndexingCompleted; or
IndexingFailed / IndexingCancelled) go through the job consumer's outbox.
Produces directly: IndexingStarted, IndexingProgressed (rag.events.v1)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import time
from collections.abc import Callable
from concurrent.futures import Executor
from importlib.metadata import version
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import numpy as np
import pyarrow as pa
from lancedb.table import Table
from modelops_contracts import (
    ArtifactKind,
    ArtifactSubmitted,
    CancelIndexing,
    Envelope,
    IndexedDocument,
    IndexingCancelled,
    IndexingCompleted,
    IndexingFailed,
    IndexingProgressed,
    IndexingStarted,
    JobStatus,
    LineageRelation,
    ParentRef,
    StartIndexing,
)
from modelops_contracts.catalog import RAG_COMMANDS
from modelops_shared.artifact_upload import upload_directory
from modelops_shared.bus import Bus
from modelops_shared.jobs import JobCommands, Outcome, StopSignal, outcome_of_error, publish_progress
from modelops_shared.storage import ObjectStore

from . import store, vectors
from .chunking import Chunk, Chunker
from .embedding import Embedder, Embedders
from .parsing import Unparseable, sections_of
from .settings import RagSettings

T = TypeVar("T")

INDEX_JOBS = JobCommands(
    topic=RAG_COMMANDS,
    start=StartIndexing,
    cancel=CancelIndexing,
    failed_event=lambda job_id, error_type, reason: IndexingFailed(job_id=job_id, reason=reason, error_type=error_type),
    cancelled_event=lambda job_id, reason: IndexingCancelled(job_id=job_id, reason=reason),
)


def index_artifact_id(job_id: str) -> str:
    """Derived from the job alone, so a redelivered job submits the same artifact."""
    return f"ragindex-{hashlib.sha256(f'rag_index:{job_id}'.encode()).hexdigest()[:24]}"


class JobRunner:
    def __init__(
        self,
        settings: RagSettings,
        pool: asyncpg.Pool,
        objects: ObjectStore,
        bus: Bus,
        embedders: Embedders,
        executor: Executor,
    ) -> None:
        self.settings = settings
        self.executor = executor
        self.pool = pool
        self.objects = objects
        self.bus = bus
        self.embedders = embedders
        self.ann = vectors.AnnSettings.of(settings)

    async def run(self, spec: StartIndexing, cause: Envelope, stop: StopSignal, worker: str) -> Outcome:
        """Index the job to an outcome; raises Transient when the infrastructure, not the job, is at fault."""
        began = time.monotonic()
        work = self.settings.work_dir / "jobs" / hashlib.sha256(spec.job_id.encode()).hexdigest()[:32]
        try:
            embedder = await self.embedders.get(spec.embedding_model)
            chunker = Chunker(embedder.tokenizer, self.settings.rag_chunk_tokens, self.settings.rag_chunk_overlap)
            uri = vectors.collection_uri(self.settings, spec.collection_id)
            db = await self._run(vectors.connect, uri, vectors.storage_options(self.settings))
            table = await self._run(vectors.open_or_create, db, embedder.dimensions)
            held = await self._run(vectors.held_documents, table)
            wanted = {document.name: document for document in spec.documents}
            stale = {name for name, sha in held.items() if name not in wanted or wanted[name].sha256 != sha}
            new = [document for document in spec.documents if held.get(document.name) != document.sha256]
            started = IndexingStarted(job_id=spec.job_id, worker=worker, documents=len(wanted), to_embed=len(new))
            await publish_progress(self.bus, started, spec.job_id, cause)
            await self._run(vectors.remove_documents, table, stale)
            skipped: dict[str, str] = {}
            embedded = 0
            for done, document in enumerate(new, 1):
                if stop.reason() == "cancelled":
                    return INDEX_JOBS.cancelled(spec.job_id, stop.detail)
                if stop.reason():
                    return Outcome(None)  # handed off: the next owner goes on from what the table holds
                try:
                    rows = await self._embedded(document, chunker, embedder)
                except Unparseable as error:
                    skipped[document.name] = str(error)
                    continue
                await self._run(vectors.add_rows, table, rows)
                embedded += rows.num_rows
                progress = IndexingProgressed(job_id=spec.job_id, done=done, total=len(new), chunks=embedded)
                await publish_progress(self.bus, progress, spec.job_id, cause)
            indexes = await self._run(vectors.refresh_indexes, table, self.ann)
            digest = await self._run(vectors.table_digest, table)
            held_now = await self._run(vectors.held_documents, table)
            index_id = index_artifact_id(spec.job_id)
            card = self._card(spec, table, indexes, digest, held_now, embedder)
            folder = work / "index"
            await asyncio.to_thread(_write_card, folder, card)
            files = await upload_directory(self.objects, folder, f"artifacts/{index_id}")
            duration = time.monotonic() - began
            figures = {
                "chunks": float(indexes["rows"]),
                "documents": float(len(held_now)),
                "embedded_chunks": float(embedded),
                "duration_seconds": duration,
            }
            submitted = await self._submission(spec, index_id, files, figures, card)
            completed = IndexingCompleted(
                job_id=spec.job_id,
                index_id=index_id,
                chunks=indexes["rows"],
                embedded_chunks=embedded,
                skipped=skipped,
                duration_seconds=duration,
            )
            record = {"index_id": index_id, "chunks": indexes["rows"], "skipped": skipped}
            return Outcome(JobStatus.COMPLETED, [submitted, completed], record=record)
        except Exception as error:
            return outcome_of_error(INDEX_JOBS, spec.job_id, error, error_type="indexing_error")
        finally:
            await asyncio.to_thread(shutil.rmtree, work, True)

    async def _embedded(self, document: IndexedDocument, chunker: Chunker, embedder: Embedder) -> pa.Table:
        """The document's chunks with their vectors, as table rows."""
        data = await self.objects.get(self.objects.key_of(document.uri))
        if hashlib.sha256(data).hexdigest() != document.sha256:
            raise Unparseable("its bytes in the store no longer match the uploaded sha256")
        chunks: list[Chunk] = await self._run(lambda: chunker.chunks(sections_of(data, document.content_type)))
        if not chunks:
            raise Unparseable("it holds no text")
        matrix = await self._run(embedder.encode, [chunk.embedded_text for chunk in chunks])
        return chunk_rows(document, chunks, matrix)

    def _card(
        self,
        spec: StartIndexing,
        table: Table,
        indexes: dict[str, Any],
        digest: str,
        held: dict[str, str],
        embedder: Embedder,
    ) -> dict[str, Any]:
        """What the signed rag_index says: where the table is, which version, what it holds, how it was made."""
        versions = {document.name: document.version for document in spec.documents}
        return {
            "collection": spec.collection,
            "collection_id": spec.collection_id,
            "table_uri": vectors.collection_uri(self.settings, spec.collection_id),
            "table": vectors.TABLE,
            "table_version": table.version,
            "rows_sha256": digest,
            "documents": [
                {"name": name, "version": versions.get(name), "sha256": sha} for name, sha in sorted(held.items())
            ],
            "embedding_model": spec.embedding_model,
            "dimensions": embedder.dimensions,
            "chunking": {
                "tokens": self.settings.rag_chunk_tokens,
                "overlap": self.settings.rag_chunk_overlap,
                "splitter": f"semantic-text-splitter {version('semantic-text-splitter')} (Markdown)",
                "embedded_text": "heading path, newline, chunk text",
            },
            "indexes": indexes,
            "search": {"fusion": f"reciprocal rank fusion, k = {vectors.RRF_K}", "nprobes": self.ann.nprobes},
            "lancedb": version("lancedb"),
        }

    async def _submission(
        self, spec: StartIndexing, index_id: str, files: list[Any], figures: dict[str, float], card: dict[str, Any]
    ) -> ArtifactSubmitted:
        parents = [ParentRef(artifact_id=spec.embedding_model, relation=LineageRelation.EMBEDDED_WITH)]
        previous = await store.index_of(self.pool, spec.collection_id)
        if previous:
            parents.append(ParentRef(artifact_id=previous, relation=LineageRelation.INDEXED_FROM))
        return ArtifactSubmitted(
            artifact_id=index_id,
            kind=ArtifactKind.RAG_INDEX,
            name=spec.collection,
            uri=self.objects.url_of(f"artifacts/{index_id}"),
            files=files,
            parents=parents,
            job_id=spec.job_id,
            metrics=figures,
            created_by=spec.requested_by,
            metadata={key: card[key] for key in ("collection_id", "table_version", "rows_sha256", "dimensions")},
        )

    async def _run(self, function: Callable[..., T], *args: Any) -> T:
        """Blocking work (LanceDB, parsing, the model) on the job's thread, the event loop left free."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, function, *args)


def chunk_rows(document: IndexedDocument, chunks: list[Chunk], matrix: np.ndarray) -> pa.Table:
    """A document's chunks and their vectors as rows of the collection's table."""
    count = len(chunks)
    return pa.table(
        {
            "document": [document.name] * count,
            "version": [document.version] * count,
            "sha256": [document.sha256] * count,
            "content_type": [document.content_type] * count,
            "chunk": [chunk.position for chunk in chunks],
            "heading": [chunk.heading for chunk in chunks],
            "page": pa.array([chunk.page for chunk in chunks], pa.int32()),
            "text": [chunk.text for chunk in chunks],
            vectors.CONTENT: [chunk.embedded_text for chunk in chunks],
            vectors.VECTOR: pa.FixedSizeListArray.from_arrays(pa.array(matrix.ravel()), matrix.shape[1]),
        }
    )


def _write_card(folder: Path, card: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / vectors.CARD).write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")
