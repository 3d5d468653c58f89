"""RAG indexing commands and events (rag → rag, through Kafka so that any replica indexes), and the rag service's
HTTP models, which the gateway documents and relays as they are: collections of documents, indexed into LanceDB
by jobs, searched hybrid (vector and full text), and answered by a deployment with citations."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, Field, StrictBool

from .artifacts import FREE_TEXT_PATTERN, REF_PATTERN, SHA256_PATTERN, TEXT_PATTERN
from .messages import Message

COLLECTION_NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,62}$"
DOCUMENT_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9 ._()+-]{0,199}$"
CONTENT_TYPES = ("text/plain", "text/markdown", "text/html", "application/pdf")

CollectionName = Annotated[str, Field(pattern=COLLECTION_NAME_PATTERN, description="Lower-case letters, digits, .-_")]
DocumentName = Annotated[str, Field(pattern=DOCUMENT_NAME_PATTERN, description="The uploaded file's name")]


class IndexedDocument(BaseModel):
    """One document version as an index job reads it: where its bytes are and what they hash to."""

    name: DocumentName
    version: int = Field(ge=1)
    uri: str = Field(description="Object-store URL of the file")
    sha256: str = Field(pattern=SHA256_PATTERN)
    size: int = Field(ge=0)
    content_type: Literal["text/plain", "text/markdown", "text/html", "application/pdf"]


class StartIndexing(Message):
    """Command: bring the collection's LanceDB table to exactly `documents` (the latest version of each), embedding
    only those whose content the table does not hold yet, and sign the result as a rag_index."""

    type: ClassVar[str] = "modelops.rag.index.v1"
    subject_field: ClassVar[str] = "job_id"

    job_id: str
    collection: CollectionName
    collection_id: str
    requested_by: str
    embedding_model: str = Field(description="Artifact id of the collection's embedding model")
    documents: list[IndexedDocument] = Field(max_length=100_000)


class CancelIndexing(Message):
    type: ClassVar[str] = "modelops.rag.cancel_index.v1"
    subject_field: ClassVar[str] = "job_id"

    job_id: str
    requested_by: str
    reason: str = ""


class IndexingStarted(Message):
    type: ClassVar[str] = "modelops.rag.indexing_started.v1"
    subject_field: ClassVar[str] = "job_id"

    job_id: str
    worker: str
    documents: int = Field(ge=0, description="Documents in the index once done")
    to_embed: int = Field(ge=0, description="Of those, the ones whose content is new to the table")


class IndexingProgressed(Message):
    type: ClassVar[str] = "modelops.rag.indexing_progressed.v1"
    subject_field: ClassVar[str] = "job_id"

    job_id: str
    done: int = Field(ge=0, description="Documents embedded so far")
    total: int = Field(ge=0)
    chunks: int = Field(ge=0, description="Chunks embedded so far")


class IndexingCompleted(Message):
    type: ClassVar[str] = "modelops.rag.indexing_completed.v1"
    subject_field: ClassVar[str] = "job_id"

    job_id: str
    index_id: str = Field(description="The rag_index artifact, submitted to the registry")
    chunks: int = Field(ge=0, description="Chunks in the table")
    embedded_chunks: int = Field(ge=0, description="Chunks this job embedded")
    skipped: dict[str, str] = Field({}, description="Documents left out, by name, with the reason")
    duration_seconds: float = Field(ge=0)


class IndexingFailed(Message):
    type: ClassVar[str] = "modelops.rag.indexing_failed.v1"
    subject_field: ClassVar[str] = "job_id"

    job_id: str
    reason: str
    error_type: str = "error"


class IndexingCancelled(Message):
    type: ClassVar[str] = "modelops.rag.indexing_cancelled.v1"
    subject_field: ClassVar[str] = "job_id"

    job_id: str
    reason: str = ""


# HTTP models (rag service ⇄ gateway ⇄ users).


class CollectionRequest(BaseModel):
    name: CollectionName
    embedding_model: str = Field(
        "all-MiniLM-L6-v2",
        pattern=REF_PATTERN,
        description="An embedding_model artifact: its id, or a name (its newest version)",
    )
    description: str = Field("", max_length=2000, pattern=FREE_TEXT_PATTERN)


class CollectionView(BaseModel):
    name: str
    id: str
    owner: str
    description: str
    embedding_model: str = Field(description="Artifact id of the embedding model every chunk is embedded with")
    documents: int
    index_id: str | None = Field(description="The newest signed rag_index, if the collection was indexed")
    chunks: int | None
    created_at: datetime


class DocumentUpload(BaseModel):
    """What the gateway tells the rag service of a file it stored (users upload multipart through the gateway)."""

    name: DocumentName
    uri: str
    sha256: str = Field(pattern=SHA256_PATTERN)
    size: int = Field(ge=0)
    content_type: Literal["text/plain", "text/markdown", "text/html", "application/pdf"]


class DocumentView(BaseModel):
    name: str
    version: int
    sha256: str
    size: int
    content_type: str
    uploaded_by: str
    uploaded_at: datetime
    unchanged: bool = Field(False, description="Same bytes as the previous version: no new version was made")


class IndexJobView(BaseModel):
    id: str
    collection: str
    status: Literal["queued", "running", "completed", "failed", "cancelled"]
    requested_by: str
    documents: int
    done: int
    total: int
    chunks: int
    index_id: str | None
    outcome: dict[str, Any] | None = Field(description="What the job ended with: counts, skipped documents, or why")
    created_at: datetime
    updated_at: datetime


FilterValue = Annotated[str, Field(max_length=200, pattern=TEXT_PATTERN)]


class SearchFilter(BaseModel):
    """Metadata filters, ANDed; a list matches any of its values."""

    model_config = {"extra": "forbid"}

    document: FilterValue | list[FilterValue] | None = Field(None, description="Document name(s)")
    content_type: FilterValue | list[FilterValue] | None = None
    heading: FilterValue | None = Field(None, description="Chunks under a heading path containing this text")


class SearchRequest(BaseModel):
    query: str = Field(min_length=1, max_length=4000, pattern=FREE_TEXT_PATTERN)
    k: int = Field(10, ge=1, le=100)
    filter: SearchFilter | None = None
    mode: Literal["hybrid", "vector", "text"] = Field("hybrid", description="Hybrid fuses both with RRF (k = 60)")


class SearchHit(BaseModel):
    document: str
    version: int
    chunk: int = Field(description="The chunk's position in its document")
    heading: str = Field(description="The heading path the chunk sits under, `A > B`")
    page: int | None = Field(description="1-based PDF page where the chunk starts")
    score: float = Field(description="The fused rank score (hybrid), cosine similarity (vector) or BM25 (text)")
    similarity: float | None = Field(description="Cosine similarity of chunk and query, where the vector side saw it")
    text: str


class SearchResults(BaseModel):
    index_id: str
    results: list[SearchHit]


class AnswerRequest(BaseModel):
    question: str = Field(min_length=1, max_length=4000, pattern=FREE_TEXT_PATTERN)
    model: str = Field(max_length=200, pattern=TEXT_PATTERN, description="A deployment's served model name")
    k: int = Field(4, ge=1, le=20, description="Passages put in the prompt")
    filter: SearchFilter | None = None
    max_tokens: int = Field(256, ge=1, le=4096)
    min_similarity: float | None = Field(
        None, ge=-1, le=1, description="Below this, the best passage is not relevant and the answer is 'I don't know'"
    )
    stream: StrictBool = False  # `"stream": 0` is not a request to stream, nor not to


class Citation(BaseModel):
    n: int = Field(description="The passage's number in the prompt, `[n]` in the answer")
    document: str
    version: int
    chunk: int
    heading: str
    page: int | None
    score: float
    similarity: float | None


class AnswerView(BaseModel):
    answer: str
    grounded: bool = Field(description="False when nothing relevant was found and the model was not asked")
    citations: list[Citation]
    model: str
    index_id: str
    usage: dict[str, Any] = Field({}, description="The deployment's token usage, as it reported it")
