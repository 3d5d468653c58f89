"""Dataset routes: upload a version (developer), and the reads a viewer may make: list, one version, its history,
its rows, read-only SQL over it. Every dataset error answers as the problem its slug and status name.

Produces: datasets.events.v1 (DatasetVersionCreated, through dataset_announcer)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse
from modelops_contracts import DatasetSchema
from pydantic import BaseModel, ConfigDict, Field, field_validator

from .auth import Developer, Role, require
from .context import GatewayDep
from .dataset_announcer import dataset_id
from .dataset_uploads import create_version, in_worker, problem_of, received_form
from .datasets import (
    DatasetError,
    DatasetVersion,
    QueryResult,
    check_name,
    describe,
    format_of,
    list_datasets,
    open_table,
    read_rows,
    run_query,
    versions,
)
from .datasets.lake import NAME_PATTERN
from .idempotency import Idempotent
from .openapi import DATASET_BODY, problems
from .settings import GatewaySettings
from .uploads import form_model

MAX_ROWS_PER_READ = 1000
QUERY_BODY_LIMIT = 128 * 1024

DatasetName = Annotated[str, PathParam(pattern=NAME_PATTERN.pattern)]
Version = Annotated[int | None, Query(ge=0, description="Delta table version; default: the latest")]

router = APIRouter(prefix="/v1", tags=["datasets"], responses=problems(401, 403, 429))
reads = APIRouter(
    prefix="/v1",
    tags=["datasets"],
    dependencies=[Depends(require(Role.VIEWER))],
    responses=problems(401, 403, 404, 422, 429),
)


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


class DatasetUpload(BaseModel):
    """The text fields of a dataset upload."""

    model_config = ConfigDict(extra="forbid")

    name: str
    schema_: DatasetSchema = Field(alias="schema")

    @field_validator("name")
    @classmethod
    def _dataset_name(cls, name: str) -> str:
        return check_name(name)


class QueryRequest(BaseModel):
    sql: str = Field(min_length=1, max_length=100_000, description="One SELECT over the table `dataset`")
    version: int | None = Field(None, ge=0, description="Default: the latest")


@router.post(
    "/datasets",
    status_code=201,
    response_model=DatasetView,
    openapi_extra=DATASET_BODY,
    responses=problems(400, 409, 413, 415, 422, 503),
)
async def upload_dataset(request: Request, caller: Developer, gateway: GatewayDep, idempotency: Idempotent) -> Response:
    """Add a version to a dataset, creating it on its first upload (developer). Every row is checked against the
    schema; one bad row rejects the upload with a row-level report (422) and writes nothing."""
    async with received_form(request, max_bytes=gateway.settings.gateway_max_dataset_bytes) as form:
        fields = form_model(DatasetUpload, form.fields)
        try:
            fmt = format_of(form.file.filename)
        except DatasetError as error:
            raise problem_of(error) from None

        async def respond(_: asyncpg.Connection, version: DatasetVersion) -> Response:
            body = DatasetView.of(version).model_dump(mode="json", by_alias=True)
            location = f"/v1/datasets/{version.name}?version={version.version}"
            return JSONResponse(body, 201, headers={"Location": location})

        return await create_version(
            gateway,
            caller,
            idempotency,
            form.file,
            name=fields.name,
            kind=fields.schema_,
            fmt=fmt,
            request=fields.model_dump(mode="json", by_alias=True),
            respond=respond,
        )


@reads.get("/datasets", response_model=DatasetPage)
async def get_datasets(
    gateway: GatewayDep,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> DatasetPage:
    """Every dataset at its latest version, by name, a page at a time."""
    datasets = await in_worker(list_datasets, gateway.settings)
    after = [dataset for dataset in datasets if cursor is None or dataset.name > cursor]
    page = after[:limit]
    return DatasetPage(
        data=[DatasetView.of(dataset) for dataset in page], next_cursor=page[-1].name if len(after) > limit else None
    )


@reads.get("/datasets/{name}", response_model=DatasetView)
async def get_dataset(gateway: GatewayDep, name: DatasetName, version: Version = None) -> DatasetView:
    """The dataset at a version (default: the latest)."""
    return DatasetView.of(await in_worker(describe, gateway.settings, name, version))


@reads.get("/datasets/{name}/versions", response_model=VersionList)
async def get_versions(
    gateway: GatewayDep, name: DatasetName, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> VersionList:
    """The dataset's versions, newest first, with who uploaded each and Delta's metrics."""
    history = await in_worker(versions, gateway.settings, name, limit)
    return VersionList(
        data=[VersionView(**info.model_dump(), dataset_id=dataset_id(name, info.version)) for info in history]
    )


def _read(settings: GatewaySettings, name: str, version: int | None, limit: int, offset: int) -> DatasetRows:
    # Pinned first, so the rows and the version they are reported with agree while uploads land.
    pinned = open_table(settings, name, version).version()
    rows = read_rows(settings, name, pinned, limit=limit, offset=offset)
    return DatasetRows(name=name, version=pinned, offset=offset, rows=rows)


@reads.get("/datasets/{name}/rows", response_model=DatasetRows)
async def get_rows(
    gateway: GatewayDep,
    name: DatasetName,
    version: Version = None,
    limit: Annotated[int, Query(ge=1, le=MAX_ROWS_PER_READ)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> DatasetRows:
    """Rows of a version, oldest uploads first, from `offset`."""
    return await in_worker(_read, gateway.settings, name, version, limit, offset)


@reads.post(
    "/datasets/{name}/query",
    response_model=QueryResult,
    max_body_size=QUERY_BODY_LIMIT,
    responses=problems(400, 413),
)
async def query_dataset(gateway: GatewayDep, name: DatasetName, body: QueryRequest) -> QueryResult:
    """Read-only SQL (one SELECT) over a version as the table `dataset`, with the gateway's row and time limits;
    no file, network or extension access."""
    settings = gateway.settings
    return await in_worker(
        run_query,
        settings,
        name,
        body.sql,
        body.version,
        max_rows=settings.gateway_query_max_rows,
        timeout_s=settings.gateway_query_timeout_s,
    )
