"""The collection's embedding model, loaded once from its verified artifact: sentence-transformers on the CPU (or
the GPU when there is one), unit-length vectors so that the dot product is the cosine similarity."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
from modelops_contracts import ArtifactKind
from modelops_shared.artifacts import ArtifactClient
from modelops_shared.jobs import fetch_input
from sentence_transformers import SentenceTransformer
from tokenizers import Tokenizer

from .settings import RagSettings


class Embedder:
    def __init__(self, path: Path, batch_size: int) -> None:
        self.model = SentenceTransformer(str(path), device=None, local_files_only=True)
        self.batch_size = batch_size
        self.dimensions = int(self.model.get_embedding_dimension() or 0)
        self.tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))

    def encode(self, texts: list[str]) -> np.ndarray:
        vectors = self.model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True)
        return np.asarray(vectors, dtype=np.float32)


class Embedders:
    """Embedding models loaded from their verified artifacts, one per artifact id, shared by index jobs and searches
    (a forward pass keeps no state, so both may encode at once)."""

    def __init__(self, settings: RagSettings, artifacts: ArtifactClient) -> None:
        self.settings = settings
        self.artifacts = artifacts
        self._loaded: dict[str, Embedder] = {}
        self._lock = asyncio.Lock()

    async def get(self, artifact_id: str) -> Embedder:
        async with self._lock:
            if artifact_id not in self._loaded:
                model = await fetch_input(self.artifacts, artifact_id, ArtifactKind.EMBEDDING_MODEL)
                embedder = await asyncio.to_thread(Embedder, model.path, self.settings.rag_embed_batch_size)
                self._loaded[artifact_id] = embedder
            return self._loaded[artifact_id]
