"""Dataset messages: a new validated Delta Lake version exists."""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

from pydantic import Field

from .messages import Message


class DatasetSchema(StrEnum):
    SFT = "sft"
    CHAT = "chat"
    PREFERENCE = "preference"
    MULTIPLE_CHOICE = "multiple_choice"
    ROUTING = "routing"


class DatasetVersionCreated(Message):
    """The gateway committed a new version of a dataset's Delta table; the registry records it."""

    type: ClassVar[str] = "modelops.dataset.version_created.v1"
    subject_field: ClassVar[str] = "name"

    dataset_id: str = Field(description="Artifact id of this dataset version")
    name: str = Field(min_length=1, max_length=200)
    version: int = Field(ge=0, description="Delta Lake table version")
    schema_kind: DatasetSchema
    uri: str
    num_rows: int = Field(ge=0)
    size_bytes: int = Field(ge=0)
    created_by: str
