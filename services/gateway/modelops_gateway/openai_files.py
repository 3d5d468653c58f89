"""OpenAI-compatible files, for `client.files.create / list / retrieve`: a fine-tune file is chat JSONL in OpenAI's
format, kept as the dataset whose name is the file's id (`file-<24 hex>`, version 0) through the same upload path
as POST /v1/datasets; fine-tuning jobs name it as their `training_file`. Errors carry OpenAI's `error` member.

Produces: datasets.events.v1 (DatasetVersionCreated, through dataset_announcer)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

import asyncpg
from fastapi import APIRouter, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse
from modelops_contracts import DatasetSchema
from modelops_shared.problems import Problem
from pydantic import BaseModel, ConfigDict, Field

from .auth import Developer, Viewer
from .context import GatewayDep
from .dataset_uploads import create_version, received_form
from .datasets import DatasetFormat, DatasetVersion
from .idempotency import Idempotent
from .openai_errors import OpenAIErrorRoute
from .openapi import FILE_BODY, problems
from .uploads import form_model

FINE_TUNE = "fine-tune"
MAX_LISTED = 10_000  # OpenAI's own bound on `limit`

_COLUMNS = "id, filename, bytes, purpose, created_at"
# Newest first unless asked otherwise; `after` is the id of the previous page's last file (an unknown one ends the
# list). Two fixed statements, so the order never reaches the SQL as text.
_LIST_SQL = {
    order: f"SELECT {_COLUMNS} FROM files WHERE ($1::text IS NULL OR purpose = $1) AND ($2::text IS NULL OR"
    f" (created_at, id) {op} (SELECT created_at, id FROM files WHERE id = $2))"
    f" ORDER BY created_at {order}, id {order} LIMIT $3"
    for order, op in (("desc", "<"), ("asc", ">"))
}

router = APIRouter(
    prefix="/v1/files", tags=["files"], route_class=OpenAIErrorRoute, responses=problems(401, 403, 422, 429)
)


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


FileId = Annotated[str, PathParam(max_length=64)]


@router.post("", response_model=FileObject, openapi_extra=FILE_BODY, responses=problems(400, 409, 413, 415, 503))
async def upload_file(request: Request, caller: Developer, gateway: GatewayDep, idempotency: Idempotent) -> Response:
    """Upload a fine-tuning file (developer): every line is checked as a chat example; one bad line rejects the
    file with a row-level report (422) and keeps nothing."""
    file_id = f"file-{uuid.uuid4().hex[:24]}"
    async with received_form(request, max_bytes=gateway.settings.gateway_max_dataset_bytes) as form:
        fields = form_model(FileUpload, form.fields)
        upload = form.file

        async def respond(conn: asyncpg.Connection, version: DatasetVersion) -> Response:
            row = await conn.fetchrow(
                f"INSERT INTO files (id, filename, bytes, purpose, created_by) VALUES ($1, $2, $3, $4, $5)"
                f" RETURNING {_COLUMNS}",
                version.name,
                upload.filename,
                upload.size,
                fields.purpose,
                caller.name,
            )
            return JSONResponse(FileObject.of(row).model_dump(mode="json"))

        # OpenAI's fine-tuning files are JSONL whatever their name (a client sending bytes names the part "upload").
        return await create_version(
            gateway,
            caller,
            idempotency,
            upload,
            name=file_id,
            kind=DatasetSchema.CHAT,
            fmt=DatasetFormat.JSONL,
            request={"purpose": fields.purpose, "filename": upload.filename},
            respond=respond,
        )


@router.get("", response_model=FileList)
async def list_files(
    _: Viewer,
    gateway: GatewayDep,
    after: Annotated[str | None, Query(max_length=64, description="The last id of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LISTED)] = MAX_LISTED,
    order: Literal["asc", "desc"] = "desc",
    purpose: Annotated[str | None, Query(max_length=64)] = None,
) -> FileList:
    """Uploaded files by creation time, newest first by default; page on with `after`."""
    rows = await gateway.runtime.pool.fetch(_LIST_SQL[order], purpose, after, limit + 1)
    files = [FileObject.of(row) for row in rows[:limit]]
    return FileList(
        data=files,
        first_id=files[0].id if files else None,
        last_id=files[-1].id if files else None,
        has_more=len(rows) > limit,
    )


@router.get("/{file_id}", response_model=FileObject, responses=problems(404))
async def retrieve_file(_: Viewer, gateway: GatewayDep, file_id: FileId) -> FileObject:
    """One uploaded file."""
    row = await gateway.runtime.pool.fetchrow(f"SELECT {_COLUMNS} FROM files WHERE id = $1", file_id)
    if row is None:
        raise Problem(404, "file-not-found", f"no file {file_id!r}")
    return FileObject.of(row)
