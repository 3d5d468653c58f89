"""Artifact submission and registry messages: what workers hand in, what the registry announces."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from .messages import Message

SHA256_PATTERN = r"^[0-9a-f]{64}$"
# Names and references a client sends are printable text: no control characters (nor NUL, which Postgres text cannot
# hold). For the edges that take them; the events keep the schema they were published under.
TEXT_PATTERN = r"^[^\x00-\x1f\x7f]*$"
# Free text (a reason): lines and tabs allowed, other control characters not.
# An artifact's id, or a name (its newest version): letters, digits, `.`, `_`, `-`, safe in a registry URL as it is.
REF_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$"
FREE_TEXT_PATTERN = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"


class ArtifactKind(StrEnum):
    BASE_MODEL = "base_model"
    DATASET = "dataset"
    ADAPTER = "adapter"
    MERGED_MODEL = "merged_model"
    QUANTIZED_MODEL = "quantized_model"
    RAG_INDEX = "rag_index"
    EMBEDDING_MODEL = "embedding_model"
    EVAL_REPORT = "eval_report"
    ROUTER = "router"


class LineageRelation(StrEnum):
    TRAINED_FROM = "trained_from"
    FINE_TUNED_ON = "fine_tuned_on"
    QUANTIZED_FROM = "quantized_from"
    MERGED_FROM = "merged_from"
    CONVERTED_FROM = "converted_from"
    EVALUATED_ON = "evaluated_on"
    EVALUATION_OF = "evaluation_of"
    DEPLOYED_AS = "deployed_as"
    INDEXED_FROM = "indexed_from"
    EMBEDDED_WITH = "embedded_with"
    TRAINED_ON = "trained_on"


class Stage(StrEnum):
    DEV = "dev"
    STAGING = "staging"
    PROD = "prod"
    ARCHIVED = "archived"
    REVOKED = "revoked"


class FileDigest(BaseModel):
    model_config = ConfigDict(frozen=True)

    path: str = Field(min_length=1, description="Path relative to the artifact's root, '/'-separated")
    sha256: str = Field(pattern=SHA256_PATTERN)
    size: int = Field(ge=0)


class ParentRef(BaseModel):
    model_config = ConfigDict(frozen=True)

    artifact_id: str
    relation: LineageRelation


class ArtifactSubmitted(Message):
    """A worker (or an import) stored an artifact's files and asks the registry to verify and sign them."""

    type: ClassVar[str] = "modelops.artifact.submitted.v1"
    subject_field: ClassVar[str] = "artifact_id"

    artifact_id: str
    kind: ArtifactKind
    name: str = Field(min_length=1, max_length=200)
    version: str | None = None
    uri: str = Field(description="Object-store URL of the folder holding the files")
    files: list[FileDigest] = Field(min_length=1)
    parents: list[ParentRef] = []
    job_id: str | None = None
    metrics: dict[str, float] = {}
    created_by: str
    metadata: dict[str, Any] = {}


class ArtifactRegistered(Message):
    """The registry verified every file, signed the manifest and stored the bundle."""

    type: ClassVar[str] = "modelops.artifact.registered.v1"
    subject_field: ClassVar[str] = "artifact_id"

    artifact_id: str
    kind: ArtifactKind
    name: str
    version: str
    digest: str = Field(pattern=SHA256_PATTERN, description="sha256 of the signed in-toto statement")
    size: int = Field(ge=0)
    uri: str
    bundle_uri: str = Field(description="Where the signed bundle is served")
    key_id: str
    stage: Stage = Stage.DEV
    bundle: dict[str, Any] | None = Field(
        None, description="The Sigstore bundle itself (DSSE over the in-toto statement), so the log holds signatures"
    )


class ArtifactRejected(Message):
    """The registry refused a submission; nothing was registered."""

    type: ClassVar[str] = "modelops.artifact.rejected.v1"
    subject_field: ClassVar[str] = "artifact_id"

    artifact_id: str
    reason: str


class ArtifactPromoted(Message):
    """An artifact moved between governance stages (revocation included); signed by the registry."""

    type: ClassVar[str] = "modelops.artifact.promoted.v1"
    subject_field: ClassVar[str] = "artifact_id"

    artifact_id: str
    from_stage: Stage
    to_stage: Stage
    actor: str
    reason: str
    at: datetime
    key_id: str
    signature: str = Field(description="Base64 signature over the canonical promotion record")
    request_id: str | None = Field(
        None, description="The request that asked for it, when it named one: the same request again returns this"
    )
