"""A collection's LanceDB table on both stores (local files and S3): rows written, searched by vector, text and
both, read back at the exact version an index signs, and its row digest catching a changed row."""

from __future__ import annotations

import uuid

import numpy as np
import pyarrow as pa
import pytest
from modelops_contracts.rag import SearchFilter
from modelops_rag import vectors
from modelops_shared.settings import Settings

ANN = vectors.AnnSettings(exhaustive_below=100_000, num_partitions=1, num_sub_vectors=1, nprobes=1, refine_factor=1)
WORDS = ["loop", "break", "error", "file", "class", "import", "yield", "lambda"]


def rows(document: str, count: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    matrix = rng.standard_normal((count, 8)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    texts = [f"{WORDS[n % len(WORDS)]} passage {n} of {document}" for n in range(count)]
    return pa.table(
        {
            "document": [document] * count,
            "version": [1] * count,
            "sha256": [f"{seed:064x}"] * count,
            "content_type": ["text/markdown"] * count,
            "chunk": list(range(count)),
            "heading": [f"{document} > part {n % 2}" for n in range(count)],
            "page": pa.array([None] * count, pa.int32()),
            "text": texts,
            vectors.CONTENT: texts,
            vectors.VECTOR: pa.FixedSizeListArray.from_arrays(pa.array(matrix.ravel()), 8),
        }
    )


async def test_a_table_is_searched_and_pinned_at_its_signed_version(store_settings: Settings) -> None:
    uri = vectors.collection_uri(store_settings, f"col-{uuid.uuid4().hex[:8]}")
    table = vectors.open_or_create(vectors.connect(uri, vectors.storage_options(store_settings)), 8)
    vectors.add_rows(table, rows("a.md", 20, 1))
    vectors.add_rows(table, rows("b.md", 20, 2))
    card = vectors.refresh_indexes(table, ANN)
    assert card["rows"] == 40
    assert card["vector"]["type"] == "exhaustive"
    assert vectors.held_documents(table) == {"a.md": f"{1:064x}", "b.md": f"{2:064x}"}
    signed_version, signed_digest = table.version, vectors.table_digest(table)
    target = rows("b.md", 20, 2)[vectors.VECTOR][3].values.to_numpy()
    hit = vectors.search(table, target, "", k=1, where=None, mode="vector", ann=ANN)[0]
    assert (hit["document"], hit["chunk"]) == ("b.md", 3)
    assert hit["similarity"] == pytest.approx(1.0, abs=1e-5)
    text = vectors.search(table, target, "yield", k=40, where=None, mode="text", ann=ANN)
    assert text
    assert all("yield" in h["text"] for h in text)
    narrowed = vectors.search(
        table,
        target,
        "loop",
        k=40,
        where=vectors.where_of(SearchFilter(document="a.md", heading="part 0")),
        mode="hybrid",
        ann=ANN,
    )
    assert narrowed
    assert all(h["document"] == "a.md" and h["heading"] == "a.md > part 0" for h in narrowed)
    # The next job's writes change the table, not the version an index signed; a changed row changes the digest.
    vectors.remove_documents(table, ["a.md"])
    assert vectors.table_digest(table) != signed_digest
    pinned = vectors.connect(uri, vectors.storage_options(store_settings)).open_table(vectors.TABLE)
    pinned.checkout(signed_version)
    assert vectors.table_digest(pinned) == signed_digest
    assert pinned.count_rows() == 40
