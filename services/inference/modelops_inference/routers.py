"""Router deployments: the spiking network of a verified router artifact, and the verified embedding model it reads
prompts with (loaded once per embedding model, shared by the routers on it). `decide` embeds a prompt and lets the
network pick a target; the gateway then sends the request there (this service never answers for a router itself)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import numpy as np
from modelops_contracts import ArtifactKind
from modelops_contracts.routing import RouteDecisionView
from modelops_shared import snn_router
from modelops_shared.artifacts import ArtifactClient, ArtifactError, VerifiedArtifact
from sentence_transformers import SentenceTransformer


@dataclass(frozen=True)
class LoadedRouter:
    artifact_id: str
    embedder_id: str
    network: snn_router.SpikingRouter
    encoder: SentenceTransformer

    def decide(self, prompt: str) -> RouteDecisionView:
        """Blocking (an embedding, then the network's time steps): call it on a worker thread."""
        vector = self.encoder.encode([prompt], normalize_embeddings=True, convert_to_numpy=True)
        decision = self.network.decide(np.asarray(vector, dtype=np.float32)[0])
        return RouteDecisionView(
            label=decision.label,
            winner=decision.winner,
            margin=decision.margin,
            fallback=decision.fallback,
            counts=decision.counts,
            synaptic_ops=decision.synaptic_ops,
            router_artifact=self.artifact_id,
        )


class Routers:
    """The routers this replica serves, by deployment name."""

    def __init__(self, artifacts: ArtifactClient) -> None:
        self.artifacts = artifacts
        self.loaded: dict[str, LoadedRouter] = {}
        self._encoders: dict[str, SentenceTransformer] = {}

    async def load(self, name: str, artifact: VerifiedArtifact) -> LoadedRouter:
        """The router `artifact` serving as `name`; ArtifactError when its files are not a router or its embedding
        model cannot be fetched and verified."""
        try:
            network = await asyncio.to_thread(snn_router.load, artifact.path)
        except (OSError, ValueError) as error:
            raise ArtifactError(f"{artifact.id} is not a usable router: {error}") from None
        embedder = await self.artifacts.fetch(network.config.embedding_model, ArtifactKind.EMBEDDING_MODEL)
        if embedder.id not in self._encoders:
            self._encoders[embedder.id] = await asyncio.to_thread(
                SentenceTransformer, str(embedder.path), device="cpu", local_files_only=True
            )
        encoder = self._encoders[embedder.id]
        dimensions = encoder.get_embedding_dimension()
        if dimensions != network.config.input_dim:
            raise ArtifactError(
                f"router {artifact.id} reads {network.config.input_dim}-dimensional embeddings; {embedder.id} makes"
                f" {dimensions}"
            )
        self.loaded[name] = LoadedRouter(artifact.id, embedder.id, network, encoder)
        return self.loaded[name]

    def drop(self, name: str) -> None:
        router = self.loaded.pop(name, None)
        if router is not None and not any(r.embedder_id == router.embedder_id for r in self.loaded.values()):
            self._encoders.pop(router.embedder_id, None)
