"""RAG settings: the shared ones plus the consumer group, scratch space, chunking, the vector index, and the
inference service that answers."""

from __future__ import annotations

from pathlib import Path

from modelops_shared.settings import Settings
from pydantic import Field


class RagSettings(Settings):
    service_name: str = "rag"
    rag_schema: str = Field("rag", description="Postgres schema: collections, documents, index jobs, the outbox")
    rag_group: str = Field("rag", description="Consumer group every rag replica joins for index jobs")
    rag_worker_id: str | None = Field(None, description="Name in IndexingStarted; default <host>-<pid>")
    rag_work_dir: Path | None = Field(None, description="Scratch space and the artifact cache; default <state_dir>/rag")
    rag_max_job_attempts: int = Field(3, ge=1, description="Starts of one index job before it is failed")
    rag_chunk_tokens: int = Field(200, ge=16, le=8192, description="Most tokens of a chunk (MiniLM reads 256)")
    rag_chunk_overlap: int = Field(32, ge=0, le=1024, description="Tokens shared by neighbouring chunks")
    rag_embed_batch_size: int = Field(64, ge=1, le=1024, description="Chunks per batch through the embedding model")
    rag_exhaustive_below: int = Field(
        20_000, ge=1, description="Below this many chunks search is exact; from it on, an IVF_PQ index is used"
    )
    rag_ivf_partitions: int = Field(256, ge=1, description="IVF partitions of the vector index")
    rag_pq_sub_vectors: int = Field(48, ge=1, description="PQ sub-vectors (384 dimensions / 48 = 8 each)")
    rag_nprobes: int = Field(80, ge=1, description="IVF partitions searched per query")
    rag_refine_factor: int = Field(20, ge=1, description="PQ candidates re-ranked on full vectors: k × this")
    rag_min_similarity: float = Field(
        0.3, ge=-1, le=1, description="Best passage's cosine similarity below which an answer is 'I don't know'"
    )
    rag_request_timeout_s: float = Field(300.0, gt=0, description="One request to a deployment")
    inference_url: str = Field("http://127.0.0.1:8004", description="The inference service's HTTP API")

    @property
    def work_dir(self) -> Path:
        return self.rag_work_dir or self.state_dir / "rag"
