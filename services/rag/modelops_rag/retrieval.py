"""Search over a collection's newest signed index: the rag_index verified (signature, files, then the table
version's rows against the digest it signs) once per index, kept open at exactly that version, and queried with
the collection's own embedding model."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from lancedb.table import Table
from modelops_contracts import ArtifactKind
from modelops_contracts.rag import SearchRequest
from modelops_shared.artifacts import (
    ArtifactClient,
    ArtifactError,
    ArtifactNotFound,
    ArtifactUnavailable,
    ArtifactVerificationError,
)
from modelops_shared.errors import DomainError

from . import vectors
from .domain import IndexUnavailable, NotIndexed
from .embedding import Embedder, Embedders
from .settings import RagSettings

MAX_OPEN_INDEXES = 64


class IndexTampered(DomainError):
    status = 500
    slug = "index-verification-failed"


@dataclass(frozen=True)
class OpenIndex:
    index_id: str
    card: dict[str, Any]
    table: Table
    embedder: Embedder


class Retriever:
    def __init__(self, settings: RagSettings, artifacts: ArtifactClient, embedders: Embedders) -> None:
        self.settings = settings
        self.artifacts = artifacts
        self.embedders = embedders
        self.ann = vectors.AnnSettings.of(settings)
        self._open: dict[str, OpenIndex] = {}
        self._opening: dict[str, asyncio.Lock] = {}  # one per index: opening one never stalls the others

    async def search(self, collection: dict[str, Any], request: SearchRequest) -> tuple[str, list[dict[str, Any]]]:
        """The collection's index id and its best chunks for the request."""
        index = await self.index_of(collection)
        vector = (await asyncio.to_thread(index.embedder.encode, [request.query]))[0]
        hits = await asyncio.to_thread(
            vectors.search,
            index.table,
            vector,
            request.query,
            k=request.k,
            where=vectors.where_of(request.filter),
            mode=request.mode,
            ann=self.ann,
        )
        return index.index_id, hits

    async def index_of(self, collection: dict[str, Any]) -> OpenIndex:
        index_id = collection["index_id"]
        if index_id is None:
            raise NotIndexed(collection["name"])
        if index_id in self._open:
            return self._open[index_id]
        async with self._opening.setdefault(index_id, asyncio.Lock()):
            if index_id not in self._open:
                opened = await self._verified(index_id, collection)
                if len(self._open) >= MAX_OPEN_INDEXES:
                    self._open.pop(next(iter(self._open)))
                self._open[index_id] = opened
        self._opening.pop(index_id, None)
        return self._open[index_id]

    async def _verified(self, index_id: str, collection: dict[str, Any]) -> OpenIndex:
        try:
            artifact = await self.artifacts.fetch(index_id, ArtifactKind.RAG_INDEX)
        except (ArtifactNotFound, ArtifactUnavailable) as error:
            raise IndexUnavailable(f"index {index_id} is not registered yet: {error}", retry_after=2) from None
        except ArtifactVerificationError as error:
            raise IndexTampered(f"index {index_id} failed verification: {error}") from None
        except ArtifactError as error:
            raise IndexUnavailable(str(error), retry_after=5) from None
        card = json.loads(await asyncio.to_thread((artifact.path / vectors.CARD).read_text))
        if card["collection_id"] != collection["id"]:
            raise IndexTampered(f"index {index_id} belongs to another collection")
        embedder = await self.embedders.get(card["embedding_model"])
        table = await asyncio.to_thread(self._table_at, card)
        return OpenIndex(index_id, card, table, embedder)

    def _table_at(self, card: dict[str, Any]) -> Table:
        db = vectors.connect(card["table_uri"], vectors.storage_options(self.settings))
        try:
            table = db.open_table(card["table"])
            table.checkout(card["table_version"])
        except (ValueError, OSError, RuntimeError) as error:
            raise IndexUnavailable(f"{card['table_uri']} version {card['table_version']}: {error}") from None
        if vectors.table_digest(table) != card["rows_sha256"]:
            raise IndexTampered(
                f"the rows of {card['table_uri']} version {card['table_version']} are not the signed ones"
            )
        return table
