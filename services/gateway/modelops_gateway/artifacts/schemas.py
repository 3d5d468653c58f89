"""The bodies of the artifact routes the gateway defines itself; reads relay the registry's read models
(modelops_contracts) as they are."""

from __future__ import annotations

from typing import Literal

from modelops_contracts import ArtifactKind, ParentRef, Stage
from modelops_contracts.artifacts import FREE_TEXT_PATTERN, TEXT_PATTERN
from pydantic import BaseModel, ConfigDict, Field, Json

from ..web.openapi import multipart_body


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
    reason: str = Field(min_length=1, max_length=2000, pattern=FREE_TEXT_PATTERN)


IMPORT_BODY = multipart_body(
    ["kind", "name", "files"],
    {
        "kind": {"type": "string", "enum": [kind.value for kind in ArtifactKind]},
        "name": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": TEXT_PATTERN},
        "version": {
            "type": "string",
            "minLength": 1,
            "maxLength": 100,
            "pattern": TEXT_PATTERN,
            "description": "Default: the next number for this kind and name",
        },
        "parents": {"type": "string", "description": 'JSON: [{"artifact_id": "...", "relation": "trained_from"}, ...]'},
        "files": {
            "type": "array",
            "minItems": 1,
            "items": {"type": "string", "format": "binary"},
            "description": "One part per file; each part's filename is its path in the artifact, "
            "relative and `/`-separated, e.g. tokenizer/tokenizer.json",
        },
    },
)
