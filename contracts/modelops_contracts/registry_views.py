"""The registry's read models over HTTP: what it answers, and what the gateway documents when it relays them (the
SDK's models are generated from the gateway's OpenAPI, so all three read one definition)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from .artifacts import ArtifactKind, LineageRelation, Stage


class ArtifactView(BaseModel):
    id: str
    kind: ArtifactKind
    name: str
    version: str
    stage: Stage
    digest: str = Field(description="sha256 of the signed DSSE payload (the in-toto statement)")
    size: int = Field(description="Total bytes of the artifact's files")
    uri: str = Field(description="Where the files are stored")
    bundle_uri: str | None = Field(description="Where the signed bundle is served")
    key_id: str | None = Field(description="The signing key's id (sha256 of its public key)")
    job_id: str | None
    created_by: str
    created_at: datetime
    metrics: dict[str, Any]
    metadata: dict[str, Any]


class ArtifactPage(BaseModel):
    data: list[ArtifactView]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last")


class ArtifactFile(BaseModel):
    path: str
    sha256: str
    size: int


class LineageEdge(BaseModel):
    parent_id: str
    child_id: str
    relation: LineageRelation


class LineageGraph(BaseModel):
    artifact_id: str
    ancestors: list[LineageEdge] = Field(description="Every edge above the artifact, transitively")
    descendants: list[LineageEdge] = Field(description="Every edge below the artifact, transitively")


class PromotionRecord(BaseModel):
    artifact_id: str
    seq: int
    from_stage: Stage
    to_stage: Stage
    actor: str
    reason: str
    at: datetime
    key_id: str
    signature: str = Field(description="Signature over the promotion record by the registry's key")


class StageAt(BaseModel):
    artifact_id: str
    at: datetime
    stage: Stage


class SigningKey(BaseModel):
    key_id: str
    algorithm: str
    pem: str
    created_at: datetime
    active: bool
