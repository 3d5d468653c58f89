"""The bodies of the artifact routes the gateway defines itself; reads relay the registry's read models
(modelops_contracts) as they are."""

from __future__ import annotations

from typing import Literal

from modelops_contracts import ArtifactKind, ParentRef, Stage
from modelops_contracts.artifacts import TEXT_PATTERN
from pydantic import BaseModel, ConfigDict, Field, Json


class ArtifactImport(BaseModel):
    """The text fields of an import."""

    model_config = ConfigDict(extra="forbid")

    kind: ArtifactKind
    name: str = Field(min_length=1, max_length=200, pattern=TEXT_PATTERN)
    version: str | None = Field(None, min_length=1, max_length=100, pattern=TEXT_PATTERN)
    parents: Json[list[ParentRef]] = Field(default_factory=list)


class ArtifactAccepted(BaseModel):
    id: str
    status: Literal["submitted"]


class PromotionRequest(BaseModel):
    to_stage: Stage
    reason: str = Field(min_length=1, max_length=2000)
