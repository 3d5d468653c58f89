"""The bodies of the dataset routes and of OpenAI's files API, built from the dataset library's records."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import asyncpg
from modelops_contracts import DatasetSchema
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..web.openapi import multipart_body
from .announcer import dataset_id
from .lake import NAME_PATTERN, DatasetVersion, check_name


class DatasetView(BaseModel):
    """One version of a dataset, as the registry records it (artifact `dataset_id`)."""

    model_config = ConfigDict(populate_by_name=True)

    name: str
    version: int
    schema_: DatasetSchema = Field(alias="schema")
    num_rows: int = Field(description="Rows at this version: every upload up to it")
    size_bytes: int
    uri: str = Field(description="The Delta table; read this version with deltalake's `version=`")
    dataset_id: str = Field(description="The registry's artifact id of this version")

    @classmethod
    def of(cls, version: DatasetVersion) -> DatasetView:
        return cls(
            name=version.name,
            version=version.version,
            schema_=version.schema_kind,
            num_rows=version.num_rows,
            size_bytes=version.size_bytes,
            uri=version.uri,
            dataset_id=dataset_id(version.name, version.version),
        )


class DatasetPage(BaseModel):
    data: list[DatasetView] = Field(description="Datasets at their latest version, by name")
    next_cursor: str | None


class VersionView(BaseModel):
    version: int
    dataset_id: str
    timestamp: datetime
    operation: str = Field(description="Delta operation, WRITE for an upload")
    rows_added: int
    num_rows: int
    created_by: str | None
    metrics: dict[str, Any]


class VersionList(BaseModel):
    data: list[VersionView] = Field(description="Newest first")


class DatasetRows(BaseModel):
    name: str
    version: int
    offset: int
    rows: list[dict[str, Any]] = Field(description="Oldest uploads first")


OPENAI_FILE_PREFIX = "file-"


class DatasetUpload(BaseModel):
    """The text fields of a dataset upload."""

    model_config = ConfigDict(extra="forbid")

    name: str
    schema_: DatasetSchema = Field(alias="schema")

    @field_validator("name")
    @classmethod
    def _dataset_name(cls, name: str) -> str:
        if name.startswith(OPENAI_FILE_PREFIX):
            # An OpenAI file is the dataset of its id, version 0, and a file never changes: nothing is appended to it.
            raise ValueError(f"`{OPENAI_FILE_PREFIX}…` names are OpenAI files, which cannot change; upload a new file")
        return check_name(name)


class QueryRequest(BaseModel):
    sql: str = Field(min_length=1, max_length=100_000, description="One SELECT over the table `dataset`")
    version: int | None = Field(None, ge=0, description="Default: the latest")


class FileObject(BaseModel):
    """OpenAI's File object."""

    id: str
    object: Literal["file"] = "file"
    bytes: int = Field(description="Size of the uploaded file")
    created_at: int = Field(description="Unix seconds")
    filename: str
    purpose: Literal["fine-tune"]
    status: Literal["processed"] = Field("processed", description="Always processed: every row was checked on upload")

    @classmethod
    def of(cls, row: asyncpg.Record) -> FileObject:
        created_at: datetime = row["created_at"]
        return cls(
            id=row["id"],
            bytes=row["bytes"],
            created_at=int(created_at.timestamp()),
            filename=row["filename"],
            purpose=row["purpose"],
        )


class FileList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FileObject]
    first_id: str | None
    last_id: str | None
    has_more: bool


class FileUpload(BaseModel):
    """The text fields of a file upload."""

    model_config = ConfigDict(extra="forbid")

    purpose: Literal["fine-tune"] = Field(description="Only fine-tuning files are kept here")


DATASET_BODY = multipart_body(
    ["name", "schema", "file"],
    {
        "name": {
            "type": "string",
            "pattern": NAME_PATTERN.pattern,
            "description": "The dataset; its first upload creates it as version 0, each later one adds a version",
        },
        "schema": {"type": "string", "enum": [kind.value for kind in DatasetSchema]},
        "file": {
            "type": "string",
            "format": "binary",
            "description": "The rows; the filename's extension tells the format: .jsonl, .ndjson, .csv, .parquet, .pq",
        },
    },
)

FILE_BODY = multipart_body(
    ["file", "purpose"],
    {
        "file": {
            "type": "string",
            "format": "binary",
            "description": "JSONL in OpenAI's chat fine-tuning format, one {messages: [...]} example a line",
        },
        "purpose": {"type": "string", "enum": ["fine-tune"]},
    },
)
