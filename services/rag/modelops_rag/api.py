"""The rag service's routes, reached through the gateway, which vouches for the acting user in its service token:
collections (create, list, show, delete), document versions, index jobs (start, show, cancel), search and answers.
Owners and admins change a collection; any user reads and asks it. A retried create with the same `request_id`
(the gateway derives it from the caller's Idempotency-Key) answers what the first one made.

Produces: rag.commands.v1 (StartIndexing, CancelIndexing), through the outbox."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, StreamingResponse
from modelops_contracts import ArtifactKind, CancelIndexing, IndexedDocument, StartIndexing
from modelops_contracts.artifacts import TEXT_PATTERN
from modelops_contracts.rag import (
    COLLECTION_NAME_PATTERN,
    AnswerRequest,
    AnswerView,
    CollectionRequest,
    CollectionView,
    DocumentUpload,
    DocumentView,
    IndexJobView,
    SearchHit,
    SearchRequest,
    SearchResults,
)
from modelops_shared.artifacts import ArtifactError, ArtifactNotFound, ArtifactUnavailable
from modelops_shared.bus import enqueue
from modelops_shared.service import ActingUser, ActingUserDep, ActingWriterDep
from modelops_shared.storage import InvalidKey

from . import answers, store, vectors
from .deps import RagDep
from .domain import (
    CollectionExists,
    CollectionNotFound,
    IndexingInProgress,
    IndexJobNotFound,
    IndexUnavailable,
    JobFinished,
    NothingToIndex,
    NotOwner,
    UnreadableDocument,
    UnusableEmbeddingModel,
)
from .parsing import Unparseable, sections_of

router = APIRouter(prefix="/v1", tags=["rag"])
CollectionName = Annotated[str, PathParam(pattern=COLLECTION_NAME_PATTERN)]
JobId = Annotated[str, PathParam(pattern=r"^ixjob-[0-9a-f]{25}$")]
RequestId = Annotated[str | None, Query(max_length=200, pattern=TEXT_PATTERN)]


async def _collection(rag: RagDep, name: str) -> dict[str, Any]:
    found = await store.collection(rag.runtime.pool, name)
    if found is None:
        raise CollectionNotFound(name)
    return found


async def _owned(rag: RagDep, name: str, user: ActingUser) -> dict[str, Any]:
    found = await _collection(rag, name)
    if found["owner"] != user.name and not user.is_admin:
        raise NotOwner(name)
    return found


@router.post("/collections", status_code=201, response_model=CollectionView)
async def create_collection(
    body: CollectionRequest, user: ActingWriterDep, rag: RagDep, request_id: RequestId = None
) -> Any:
    """A new collection, owned by the caller, whose chunks are all embedded by one embedding_model artifact."""
    pool = rag.runtime.pool
    if request_id and (made := await store.collection_by_request(pool, request_id)):
        return made
    try:
        model = await rag.artifacts.resolve(body.embedding_model, ArtifactKind.EMBEDDING_MODEL)
    except (ArtifactNotFound, ArtifactUnavailable) as error:
        raise UnusableEmbeddingModel(str(error), model=body.embedding_model) from None
    except ArtifactError as error:
        raise IndexUnavailable(f"the registry could not answer: {error}", retry_after=5) from None
    created = await store.insert_collection(
        pool,
        name=body.name,
        owner=user.name,
        description=body.description,
        embedding_model=model["id"],
        request_id=request_id,
    )
    if not created:
        raise CollectionExists(body.name)
    return await _collection(rag, body.name)


@router.get("/collections", response_model=list[CollectionView])
async def list_collections(_: ActingUserDep, rag: RagDep) -> Any:
    return await store.collections(rag.runtime.pool)


@router.get("/collections/{name}", response_model=CollectionView)
async def get_collection(_: ActingUserDep, rag: RagDep, name: CollectionName) -> Any:
    return await _collection(rag, name)


@router.delete("/collections/{name}", status_code=204)
async def delete_collection(user: ActingWriterDep, rag: RagDep, name: CollectionName) -> Response:
    """Gone from listings and searches, its documents' bytes and its LanceDB table deleted; its signed indexes stay
    in the registry's records, for lineage."""
    found = await _owned(rag, name, user)
    async with rag.runtime.pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", found["id"])  # as an index request takes
        if job_id := await store.active_job(conn, found["id"]):
            raise IndexingInProgress(name, job_id)
        await store.delete_collection(conn, found["id"])
        uris = [document["uri"] for document in await store.document_versions(conn, found["id"], with_uri=True)]
    objects = rag.runtime.store
    for uri in uris:
        await objects.delete(objects.key_of(uri))
    uri = vectors.collection_uri(rag.settings, found["id"])
    await asyncio.to_thread(vectors.drop, uri, vectors.storage_options(rag.settings))
    return Response(status_code=204)


@router.post("/collections/{name}/documents", status_code=201, response_model=DocumentView)
async def add_document(
    body: DocumentUpload, user: ActingWriterDep, rag: RagDep, name: CollectionName, request_id: RequestId = None
) -> Any:
    """Record a file the gateway stored as the next version of its name, once it parses as its type says;
    the same bytes as the newest version make no new one (`unchanged`)."""
    found = await _owned(rag, name, user)
    pool = rag.runtime.pool
    if request_id and (made := await store.document_by_request(pool, request_id)):
        return made
    objects = rag.runtime.store
    try:
        data = await objects.get(objects.key_of(body.uri))
    except (InvalidKey, ValueError) as error:
        raise UnreadableDocument(body.name, f"not in this service's store: {error}") from None
    if len(data) != body.size:
        raise UnreadableDocument(body.name, "the stored file is not the one described")
    try:
        sections = await asyncio.to_thread(sections_of, data, body.content_type)
    except Unparseable as error:
        raise UnreadableDocument(body.name, str(error)) from None
    if not sections:
        raise UnreadableDocument(body.name, "it holds no text")
    upload = {**body.model_dump(), "uploaded_by": user.name, "request_id": request_id}
    async with pool.acquire() as conn, conn.transaction():
        return await store.add_document(conn, found["id"], upload)


@router.get("/collections/{name}/documents", response_model=list[DocumentView])
async def list_documents(_: ActingUserDep, rag: RagDep, name: CollectionName) -> Any:
    """Every version of every document, newest version first per name."""
    found = await _collection(rag, name)
    return await store.document_versions(rag.runtime.pool, found["id"])


@router.post("/collections/{name}/index", status_code=202, response_model=IndexJobView)
async def index_collection(
    user: ActingWriterDep, rag: RagDep, name: CollectionName, request_id: RequestId = None
) -> Any:
    """Start a Kafka job that brings the collection's index to its newest documents; one job per collection at a
    time (409 while one runs). Follow `GET /v1/index-jobs/{id}`."""
    found = await _owned(rag, name, user)
    pool = rag.runtime.pool
    if request_id and (made := await store.job_by_request(pool, request_id)):
        return JSONResponse(IndexJobView.model_validate(made).model_dump(mode="json"), 202)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", found["id"])
        if job_id := await store.active_job(conn, found["id"]):
            raise IndexingInProgress(name, job_id)
        documents = [IndexedDocument.model_validate(row) for row in await store.latest_documents(conn, found["id"])]
        if not documents:
            raise NothingToIndex(name)
        command = StartIndexing(
            job_id=store.new_id("ixjob"),
            collection=name,
            collection_id=found["id"],
            requested_by=user.name,
            embedding_model=found["embedding_model"],
            documents=documents,
        )
        await store.insert_job(conn, command.job_id, found["id"], user.name, len(documents), request_id)
        await enqueue(conn, rag.runtime.bus, command, correlation_id=command.job_id)
        job = await store.job(conn, command.job_id)
    return JSONResponse(IndexJobView.model_validate(job).model_dump(mode="json"), 202)


@router.get("/index-jobs/{job_id}", response_model=IndexJobView)
async def get_index_job(_: ActingUserDep, rag: RagDep, job_id: JobId) -> Any:
    job = await store.job(rag.runtime.pool, job_id)
    if job is None:
        raise IndexJobNotFound(job_id)
    return job


@router.post("/index-jobs/{job_id}/cancel", status_code=202, response_model=IndexJobView)
async def cancel_index_job(user: ActingWriterDep, rag: RagDep, job_id: JobId) -> Any:
    """Ask the job's worker to stop before its next document (who started it, or an admin)."""
    async with rag.runtime.pool.acquire() as conn, conn.transaction():
        job = await store.job(conn, job_id)
        if job is None:
            raise IndexJobNotFound(job_id)
        if job["requested_by"] != user.name and not user.is_admin:
            raise NotOwner(job["collection"])
        if job["status"] not in store.ACTIVE:
            raise JobFinished(job_id, job["status"])
        cancel = CancelIndexing(job_id=job_id, requested_by=user.name, reason=f"cancelled by {user.name}")
        await enqueue(conn, rag.runtime.bus, cancel, correlation_id=job_id)
    return JSONResponse(IndexJobView.model_validate(job).model_dump(mode="json"), 202)


@router.post("/collections/{name}/search", response_model=SearchResults)
async def search(body: SearchRequest, _: ActingUserDep, rag: RagDep, name: CollectionName) -> SearchResults:
    """The k best chunks of the collection's newest index: hybrid (vector and full text fused by reciprocal rank),
    vector only, or text only, with metadata filters."""
    index_id, hits = await rag.retriever.search(await _collection(rag, name), body)
    return SearchResults(index_id=index_id, results=[SearchHit.model_validate(hit) for hit in hits])


@router.post("/collections/{name}/answer", response_model=AnswerView)
async def answer(body: AnswerRequest, _: ActingUserDep, rag: RagDep, name: CollectionName) -> Any:
    """Retrieve, then ask the deployment serving `model` to answer from the passages only, citing them; streamed
    as server-sent events (`citations`, then `delta`s, then `done`) with `stream`."""
    found = await _collection(rag, name)
    query = SearchRequest(query=body.question, k=body.k, filter=body.filter, mode="hybrid")
    index_id, hits = await rag.retriever.search(found, query)
    threshold = rag.settings.rag_min_similarity if body.min_similarity is None else body.min_similarity
    if not answers.relevant(hits, threshold):
        view = answers.not_known(name, body.model, index_id)
        return _event_stream(view, None) if body.stream else view
    citations = answers.citations_of(hits)
    messages = answers.messages_of(body.question, hits)
    if body.stream:
        head = AnswerView(answer="", grounded=True, citations=citations, model=body.model, index_id=index_id)
        text = answers.ask_streaming(rag.inference, body.model, messages, body.max_tokens)
        return _event_stream(head, text)
    reply = await answers.ask(rag.inference, body.model, messages, body.max_tokens)
    return AnswerView(
        answer=reply["text"],
        grounded=True,
        citations=citations,
        model=body.model,
        index_id=index_id,
        usage=reply["usage"],
    )


def _event_stream(head: AnswerView, text: AsyncIterator[str] | None) -> StreamingResponse:
    """`citations` first (with `answer` whole when the model is not asked), the text as it comes, then `done`."""

    async def events() -> AsyncIterator[str]:
        yield answers.sse({"type": "citations", **head.model_dump(mode="json")})
        if text is not None:
            try:
                async for delta in text:
                    yield answers.sse({"type": "delta", "text": delta})
            except Exception as error:  # the status is sent already: the failure is the stream's last event
                yield answers.sse({"type": "error", "detail": str(error)})
                return
        yield answers.sse({"type": "done"})

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
