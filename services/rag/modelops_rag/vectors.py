"""A collection's chunks in one LanceDB table (`<store>/rag/<collection id>`): written by index jobs, searched by
vector, full text, or both fused with reciprocal rank fusion. Searches read the exact table version a signed
rag_index names, so an index job in progress, or one that failed half way, is never seen.

Below `exhaustive_below` rows there is no vector index and search is exact; above it an IVF_PQ index is built and
queried with a refine step (the PQ candidates re-ranked on full vectors), which is what brings its recall from
~0.16 to ≥ 0.95 at that size (bench/rag.py)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal
from urllib.parse import urlsplit

import lancedb
import numpy as np
import pyarrow as pa
from lancedb.index import FTS, IvfPq
from lancedb.rerankers import RRFReranker
from lancedb.table import Table
from modelops_contracts.rag import SearchFilter
from modelops_shared.settings import Settings

from .settings import RagSettings

TABLE = "chunks"
VECTOR = "vector"
CONTENT = "content"  # heading path and text: what is embedded and what full-text search reads
RRF_K = 60
KEEP_VERSIONS = timedelta(days=3650)
CARD = "index.json"  # the rag_index artifact's one file: where the table is, which version, what it holds


@dataclass(frozen=True)
class AnnSettings:
    """How the vector index is built once the table is large, and how it is queried."""

    exhaustive_below: int
    num_partitions: int
    num_sub_vectors: int
    nprobes: int
    refine_factor: int

    @classmethod
    def of(cls, settings: RagSettings) -> AnnSettings:
        return cls(
            exhaustive_below=settings.rag_exhaustive_below,
            num_partitions=settings.rag_ivf_partitions,
            num_sub_vectors=settings.rag_pq_sub_vectors,
            nprobes=settings.rag_nprobes,
            refine_factor=settings.rag_refine_factor,
        )


def schema(dimensions: int) -> pa.Schema:
    return pa.schema(
        [
            pa.field("document", pa.string(), nullable=False),
            pa.field("version", pa.int32(), nullable=False),
            pa.field("sha256", pa.string(), nullable=False),
            pa.field("content_type", pa.string(), nullable=False),
            pa.field("chunk", pa.int32(), nullable=False),
            pa.field("heading", pa.string(), nullable=False),
            pa.field("page", pa.int32()),
            pa.field("text", pa.string(), nullable=False),
            pa.field(CONTENT, pa.string(), nullable=False),
            pa.field(VECTOR, pa.list_(pa.float32(), dimensions), nullable=False),
        ]
    )


def storage_options(settings: Settings) -> dict[str, str]:
    """Lance's object-store options for the configured store: none for local files; S3 endpoint and keys."""
    if urlsplit(settings.store_url).scheme != "s3":
        return {}
    return {
        "aws_endpoint": f"{'https' if settings.s3_secure else 'http'}://{settings.s3_endpoint}",
        "aws_access_key_id": settings.s3_access_key.get_secret_value(),
        "aws_secret_access_key": settings.s3_secret_key.get_secret_value(),
        "aws_region": settings.s3_region,
        "allow_http": str(not settings.s3_secure).lower(),
    }


def collection_uri(settings: Settings, collection_id: str) -> str:
    return f"{settings.store_url.rstrip('/')}/rag/{collection_id}"


def connect(uri: str, options: dict[str, str]) -> lancedb.DBConnection:
    return lancedb.connect(uri, storage_options=options or None)


def open_or_create(db: lancedb.DBConnection, dimensions: int) -> Table:
    return db.create_table(TABLE, schema=schema(dimensions), exist_ok=True)


def drop(uri: str, options: dict[str, str]) -> None:
    """The collection's table and every version of it, gone."""
    db = connect(uri, options)
    if TABLE in db.table_names():
        db.drop_table(TABLE)


def held_documents(table: Table) -> dict[str, str]:
    """The content (sha256) the table holds for each document."""
    rows = table.search().select(["document", "sha256"]).limit(max(table.count_rows(), 1)).to_arrow()
    return dict(zip(rows["document"].to_pylist(), rows["sha256"].to_pylist(), strict=True))


def remove_documents(table: Table, names: Iterable[str]) -> None:
    names = sorted(set(names))
    for start in range(0, len(names), 500):
        table.delete(f"document IN ({', '.join(_quoted(name) for name in names[start : start + 500])})")


def add_rows(table: Table, rows: pa.Table) -> None:
    if rows.num_rows:
        table.add(rows.cast(table.schema))


def refresh_indexes(table: Table, ann: AnnSettings) -> dict[str, Any]:
    """Full-text index always; vector index once the table is large. New rows join existing indexes (optimize);
    returns what the index card records of them."""
    indexed = {index.index_type for index in table.list_indices()}
    rows = table.count_rows()
    if "FTS" not in indexed:
        table.create_index(CONTENT, config=FTS())
    vector_index = rows >= ann.exhaustive_below
    if vector_index and "IVF_PQ" not in indexed:
        config = IvfPq(distance_type="cosine", num_partitions=ann.num_partitions, num_sub_vectors=ann.num_sub_vectors)
        table.create_index(VECTOR, config=config)
    elif indexed:
        # Older versions stay readable: signed indexes name them, and searches are pinned to them.
        table.optimize(cleanup_older_than=KEEP_VERSIONS)
    return {
        "rows": rows,
        "full_text": {"column": CONTENT, "tokenizer": "simple, lower case, English stemming"},
        "vector": (
            {"type": "IVF_PQ", "metric": "cosine", "partitions": ann.num_partitions, "sub_vectors": ann.num_sub_vectors}
            if vector_index
            else {"type": "exhaustive", "metric": "cosine"}
        ),
    }


def search(
    table: Table,
    vector: np.ndarray,
    query: str,
    *,
    k: int,
    where: str | None,
    mode: Literal["hybrid", "vector", "text"],
    ann: AnnSettings,
) -> list[dict[str, Any]]:
    """The k best chunks, best first, each with `score` (RRF, cosine similarity or BM25 by mode) and `similarity`
    (cosine, where the vector side saw the chunk)."""
    columns = ["document", "version", "chunk", "heading", "page", "text"]
    # LanceDB types search() as its base builder; each query type's builder has what is called on it here.
    searched: Any = table.search
    if mode == "text":
        builder = searched(query, query_type="fts", fts_columns=CONTENT)
    elif mode == "vector":
        builder = searched(vector, vector_column_name=VECTOR).distance_type("cosine")
    else:
        builder = (
            searched(query_type="hybrid", vector_column_name=VECTOR, fts_columns=CONTENT)
            .vector(vector)
            .text(query)
            .distance_type("cosine")
        )
    if mode != "text":
        builder = builder.nprobes(ann.nprobes).refine_factor(ann.refine_factor)
    if where:
        builder = builder.where(where, prefilter=True)
    if mode == "hybrid":
        builder = builder.rerank(RRFReranker(K=RRF_K, return_score="all"))
    rows = builder.limit(k).to_arrow().to_pylist()
    hits = []
    for row in rows:
        distance = row.get("_distance")
        similarity = None if distance is None else 1.0 - float(distance)
        score = {"hybrid": row.get("_relevance_score"), "vector": similarity, "text": row.get("_score")}[mode]
        hits.append({**{name: row[name] for name in columns}, "score": float(score or 0.0), "similarity": similarity})
    return hits


def where_of(selected: SearchFilter | None) -> str | None:
    """The filter as Lance SQL, every value quoted: users never write SQL."""
    if selected is None:
        return None
    clauses = []
    for column in ("document", "content_type"):
        value = getattr(selected, column)
        if value is None:
            continue
        values = value if isinstance(value, list) else [value]
        clauses.append(f"{column} IN ({', '.join(_quoted(v) for v in values)})" if values else "false")
    if selected.heading is not None:
        clauses.append(f"strpos(heading, {_quoted(selected.heading)}) > 0")
    return " AND ".join(clauses) or None


def _quoted(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def table_digest(table: Table) -> str:
    """sha256 over every row's document, content hash, position, text and vector, in (document, chunk) order: what
    the signed card promises the table version holds."""
    columns = ["document", "sha256", "chunk", "text", VECTOR]
    rows = table.search().select(columns).limit(max(table.count_rows(), 1)).to_arrow()
    rows = rows.sort_by([("document", "ascending"), ("chunk", "ascending")])
    digest = hashlib.sha256()
    for start in range(0, rows.num_rows, 4096):
        batch = rows.slice(start, 4096).to_pydict()
        matrix = np.asarray(batch[VECTOR], dtype=np.float32)
        for n, (document, sha, chunk, text) in enumerate(
            zip(batch["document"], batch["sha256"], batch["chunk"], batch["text"], strict=True)
        ):
            digest.update(json.dumps([document, sha, chunk, text]).encode())
            digest.update(matrix[n].tobytes())
    return digest.hexdigest()
