"""Dataset routes: upload a version (developer), and the reads a viewer may make: list, one version, its history,
its rows, read-only SQL over it. And OpenAI's files API over the same upload path (`client.files.create / list /
retrieve`): a fine-tune file is chat JSONL, kept as the dataset whose name is the file's id (`file-<24 hex>`,
version 0); fine-tuning jobs name it as their `training_file`; its errors carry OpenAI's `error` member too.

Produces: datasets.events.v1 (DatasetVersionCreated, through announcer.py)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

import asyncpg
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse
from modelops_contracts import DatasetSchema
from modelops_contracts.artifacts import TEXT_PATTERN
from modelops_shared.openai_errors import OpenAIErrorRoute

from ..deps import GatewayDep
from ..web.auth import Developer, Role, Viewer, require
from ..web.forms import form_model
from ..web.idempotency import Idempotent
from ..web.multipart import form_parts
from ..web.openapi import problems
from . import store
from .announcer import announce, dataset_id
from .domain import FileNotFound
from .lake import NAME_PATTERN, DatasetVersion, describe, list_datasets, read_pinned_rows, versions
from .query import QueryResult, run_query
from .schemas import (
    DATASET_BODY,
    FILE_BODY,
    OPENAI_FILE_PREFIX,
    DatasetPage,
    DatasetRows,
    DatasetUpload,
    DatasetView,
    FileList,
    FileObject,
    FileUpload,
    QueryRequest,
    VersionList,
    VersionView,
)
from .uploads import received_form, validated_rows, write_upload
from .validation import DatasetFormat, format_of

MAX_ROWS_PER_READ = 1000
MAX_OFFSET = 2**31 - 1 - MAX_ROWS_PER_READ  # Arrow's `head` counts rows in a C int
QUERY_BODY_LIMIT = 128 * 1024
MAX_LISTED_FILES = 10_000  # OpenAI's own bound on `limit`

DatasetName = Annotated[str, PathParam(pattern=NAME_PATTERN.pattern)]
Version = Annotated[int | None, Query(ge=0, description="Delta table version; default: the latest")]
FileId = Annotated[str, PathParam(max_length=64)]

router = APIRouter(prefix="/v1", tags=["datasets"], responses=problems(401, 403, 429))
reads = APIRouter(
    prefix="/v1",
    tags=["datasets"],
    dependencies=[Depends(require(Role.VIEWER))],
    responses=problems(401, 403, 404, 422, 429),
)
files = APIRouter(
    prefix="/v1/files", tags=["files"], route_class=OpenAIErrorRoute, responses=problems(401, 403, 422, 429)
)


@router.post(
    "/datasets",
    status_code=201,
    response_model=DatasetView,
    openapi_extra=DATASET_BODY,
    responses=problems(400, 403, 409, 413, 415, 422, 503),
)
async def upload_dataset(request: Request, caller: Developer, gateway: GatewayDep, idempotency: Idempotent) -> Response:
    """Add a version to a dataset, creating it on its first upload (developer; a later version is the dataset's
    owner's or an admin's to add). Every row is checked against the schema; one bad row rejects the upload with a
    row-level report (422) and writes nothing."""
    max_bytes = gateway.settings.gateway_max_dataset_bytes
    async with received_form(form_parts(request.headers, request.stream(), max_bytes), max_bytes=max_bytes) as form:
        fields = form_model(DatasetUpload, form.fields)
        fmt = format_of(form.file.filename)
        rows = await validated_rows(form.file, fmt, fields.schema_)

        async def write(token: str) -> DatasetVersion:
            return await write_upload(
                gateway.runtime.pool,
                gateway.settings,
                name=fields.name,
                kind=fields.schema_,
                rows=rows,
                created_by=caller.name,
                role=caller.role,
                upload=token,
            )

        async def record(conn: asyncpg.Connection, version: DatasetVersion) -> Response:
            await announce(conn, gateway.runtime.bus, version, caller.name)
            body = DatasetView.of(version).model_dump(mode="json", by_alias=True)
            location = f"/v1/datasets/{version.name}?version={version.version}"
            return JSONResponse(body, 201, headers={"Location": location})

        fingerprint = form.file.fingerprint(fmt, fields.model_dump(mode="json", by_alias=True))
        return (await idempotency.run_prepared(fingerprint, write, record)).response


@reads.get("/datasets", response_model=DatasetPage)
async def get_datasets(
    gateway: GatewayDep,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> DatasetPage:
    """Every dataset at its latest version, by name, a page at a time."""
    datasets = await asyncio.to_thread(list_datasets, gateway.settings)
    after = [dataset for dataset in datasets if cursor is None or dataset.name > cursor]
    page = after[:limit]
    return DatasetPage(
        data=[DatasetView.of(dataset) for dataset in page], next_cursor=page[-1].name if len(after) > limit else None
    )


@reads.get("/datasets/{name}", response_model=DatasetView)
async def get_dataset(gateway: GatewayDep, name: DatasetName, version: Version = None) -> DatasetView:
    """The dataset at a version (default: the latest)."""
    return DatasetView.of(await asyncio.to_thread(describe, gateway.settings, name, version))


@reads.get("/datasets/{name}/versions", response_model=VersionList)
async def get_versions(
    gateway: GatewayDep, name: DatasetName, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> VersionList:
    """The dataset's versions, newest first, with who uploaded each and Delta's metrics."""
    history = await asyncio.to_thread(versions, gateway.settings, name, limit)
    return VersionList(
        data=[VersionView(**info.model_dump(), dataset_id=dataset_id(name, info.version)) for info in history]
    )


@reads.get("/datasets/{name}/rows", response_model=DatasetRows)
async def get_rows(
    gateway: GatewayDep,
    name: DatasetName,
    version: Version = None,
    limit: Annotated[int, Query(ge=1, le=MAX_ROWS_PER_READ)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> DatasetRows:
    """Rows of a version, oldest uploads first, from `offset`."""
    pinned, rows = await asyncio.to_thread(
        read_pinned_rows, gateway.settings, name, version, limit=limit, offset=offset
    )
    return DatasetRows(name=name, version=pinned, offset=offset, rows=rows)


@reads.post(
    "/datasets/{name}/query",
    response_model=QueryResult,
    max_body_size=QUERY_BODY_LIMIT,
    responses=problems(400, 413),
)
async def query_dataset(gateway: GatewayDep, name: DatasetName, body: QueryRequest) -> QueryResult:
    """Read-only SQL (one SELECT) over a version as the table `dataset`, with the gateway's row, byte, time and
    concurrency limits; no file, network or extension access."""
    settings = gateway.settings
    async with gateway.query_slots:
        return await asyncio.to_thread(
            run_query,
            settings,
            name,
            body.sql,
            body.version,
            max_rows=settings.gateway_query_max_rows,
            max_bytes=settings.gateway_query_max_bytes,
            timeout_s=settings.gateway_query_timeout_s,
        )


@files.post("", response_model=FileObject, openapi_extra=FILE_BODY, responses=problems(400, 409, 413, 415, 503))
async def upload_file(request: Request, caller: Developer, gateway: GatewayDep, idempotency: Idempotent) -> Response:
    """Upload a fine-tuning file (developer): every line is checked as a chat example; one bad line rejects the
    file with a row-level report (422) and keeps nothing."""
    max_bytes = gateway.settings.gateway_max_dataset_bytes
    async with received_form(form_parts(request.headers, request.stream(), max_bytes), max_bytes=max_bytes) as form:
        fields = form_model(FileUpload, form.fields)
        upload = form.file
        # OpenAI's fine-tuning files are JSONL whatever their name (a client sending bytes names the part "upload").
        rows = await validated_rows(upload, DatasetFormat.JSONL, DatasetSchema.CHAT)

        async def write(token: str) -> DatasetVersion:
            # The file's id comes from the upload's token, so a retry of the upload is the same file.
            return await write_upload(
                gateway.runtime.pool,
                gateway.settings,
                name=f"{OPENAI_FILE_PREFIX}{token[:24]}",
                kind=DatasetSchema.CHAT,
                rows=rows,
                created_by=caller.name,
                role=caller.role,
                upload=token,
            )

        async def record(conn: asyncpg.Connection, version: DatasetVersion) -> Response:
            await announce(conn, gateway.runtime.bus, version, caller.name)
            row = await store.insert_file(
                conn,
                version.name,
                filename=upload.filename,
                size=upload.size,
                purpose=fields.purpose,
                created_by=caller.name,
            )
            return JSONResponse(FileObject.of(row).model_dump(mode="json"))

        fingerprint = upload.fingerprint(DatasetFormat.JSONL, {"purpose": fields.purpose, "filename": upload.filename})
        return (await idempotency.run_prepared(fingerprint, write, record)).response


@files.get("", response_model=FileList)
async def list_files(
    _: Viewer,
    gateway: GatewayDep,
    after: Annotated[
        str | None, Query(max_length=64, pattern=TEXT_PATTERN, description="The last id of the previous page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LISTED_FILES)] = MAX_LISTED_FILES,
    order: Literal["asc", "desc"] = "desc",
    purpose: Annotated[str | None, Query(max_length=64, pattern=TEXT_PATTERN)] = None,
) -> FileList:
    """Uploaded files by creation time, newest first by default; page on with `after`."""
    rows = await store.list_files(gateway.runtime.pool, purpose=purpose, after=after, limit=limit + 1, order=order)
    objects = [FileObject.of(row) for row in rows[:limit]]
    return FileList(
        data=objects,
        first_id=objects[0].id if objects else None,
        last_id=objects[-1].id if objects else None,
        has_more=len(rows) > limit,
    )


@files.get("/{file_id}", response_model=FileObject, responses=problems(404))
async def retrieve_file(_: Viewer, gateway: GatewayDep, file_id: FileId) -> FileObject:
    """One uploaded file."""
    row = await store.get_file(gateway.runtime.pool, file_id)
    if row is None:
        raise FileNotFound(file_id)
    return FileObject.of(row)
