"""Dataset tables: one append-only Delta Lake table per dataset under `<store>/datasets/<name>`, one table version
per upload. Every function blocks on storage I/O: call them through `asyncio.to_thread`. Why the schema kind lives
in the table's description and history is read from the commit files: the gateway README, "Dataset tables"."""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.fs as pafs
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError
from modelops_contracts import DatasetSchema
from modelops_shared.settings import Settings
from modelops_shared.storage import LocalStore, S3Store, open_store
from modelops_shared.storage.delta import delta_storage_options
from pydantic import BaseModel, Field

from .domain import (
    ConcurrentWrite,
    DatasetCorrupt,
    DatasetNotFound,
    InvalidDatasetName,
    SchemaKindMismatch,
    VersionNotFound,
)
from .validation import ARROW_SCHEMAS

DATASETS_PREFIX = "datasets"
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
CREATED_BY_KEY = "modelops.created_by"
UPLOAD_KEY = "modelops.upload"  # the upload's token, in its commit: a retry finds the version it wrote
_DESCRIPTION_PREFIX = "ModelOps dataset; schema kind: "
_COMMIT_FILE = re.compile(r"^(\d{20})\.json$")

log = logging.getLogger(__name__)


class DatasetVersion(BaseModel):
    """One version of a dataset: what `DatasetVersionCreated` announces."""

    name: str
    version: int = Field(description="Delta Lake table version")
    schema_kind: DatasetSchema
    num_rows: int = Field(description="Rows in the table at this version (every upload up to it)")
    size_bytes: int = Field(description="Size of the table's data files at this version")
    uri: str = Field(description="The Delta table; read this version with deltalake's `version=`")


class VersionInfo(BaseModel):
    """One commit of a dataset's table, from its Delta log."""

    version: int
    timestamp: datetime
    operation: str = Field(description="Delta operation, WRITE for an upload")
    rows_added: int
    num_rows: int = Field(description="Rows in the table at this version")
    created_by: str | None
    metrics: dict[str, Any] = Field(description="Delta's operation metrics")


def check_name(name: str) -> str:
    """`name` if it is a safe dataset name: lowercase letters, digits, `.`, `_`, `-`, at most 63, alphanumeric first."""
    if not NAME_PATTERN.fullmatch(name):
        raise InvalidDatasetName(
            f"{name!r} is not a dataset name: use 1 to 63 lowercase letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


@dataclass(frozen=True)
class _Lake:
    """Where the dataset tables live, for deltalake (URI and options) and for pyarrow (filesystem and path)."""

    root_uri: str
    storage_options: dict[str, str]
    filesystem: pafs.FileSystem
    root_path: str

    def uri(self, name: str) -> str:
        return f"{self.root_uri}/{check_name(name)}"

    def log_path(self, name: str) -> str:
        return f"{self.root_path}/{check_name(name)}/_delta_log"


def _lake(settings: Settings) -> _Lake:
    store = open_store(settings.store_url, settings)
    root_uri = store.url_of(DATASETS_PREFIX)
    if isinstance(store, LocalStore):
        return _Lake(root_uri, {}, pafs.LocalFileSystem(), str(store.root / DATASETS_PREFIX))
    assert isinstance(store, S3Store), f"open_store returned an unknown store type {type(store).__name__}"
    filesystem = _s3_filesystem(
        settings.s3_endpoint,
        settings.s3_access_key.get_secret_value(),
        settings.s3_secret_key.get_secret_value(),
        settings.s3_region,
        settings.s3_secure,
    )
    root_path = "/".join(part for part in (store.bucket, store.prefix, DATASETS_PREFIX) if part)
    return _Lake(root_uri, delta_storage_options(settings), filesystem, root_path)


# One client, and so one connection pool, per endpoint and credentials rather than one per call.
@lru_cache(maxsize=8)
def _s3_filesystem(endpoint: str, access_key: str, secret_key: str, region: str, secure: bool) -> pafs.FileSystem:
    return pafs.S3FileSystem(
        access_key=access_key,
        secret_key=secret_key,
        region=region,
        endpoint_override=endpoint,
        scheme="https" if secure else "http",
    )


def table_uri(settings: Settings, name: str) -> str:
    """The URI of the dataset's Delta table (`file:///…/datasets/<name>` or `s3://bucket/prefix/datasets/<name>`)."""
    return _lake(settings).uri(name)


def open_table(settings: Settings, name: str, version: int | None = None) -> DeltaTable:
    """The dataset's table at `version` (default: the latest); DatasetNotFound or VersionNotFound otherwise."""
    return _open(_lake(settings), name, version)


def _open(lake: _Lake, name: str, version: int | None) -> DeltaTable:
    try:
        table = DeltaTable(lake.uri(name), storage_options=lake.storage_options)
    except TableNotFoundError:
        raise DatasetNotFound(name) from None
    latest = table.version()
    if version is not None and version != latest:
        if not 0 <= version < latest:
            raise VersionNotFound(name, version, latest)
        table.load_as_version(version)
    return table


def _schema_kind(name: str, table: DeltaTable) -> DatasetSchema:
    description = table.metadata().description or ""
    try:
        return DatasetSchema(description.removeprefix(_DESCRIPTION_PREFIX))
    except ValueError:
        raise DatasetCorrupt(f"the table of dataset {name!r} does not record a schema kind") from None


def _version(lake: _Lake, name: str, table: DeltaTable) -> DatasetVersion:
    files = pa.table(table.get_add_actions(flatten=True))
    # delta-rs writes row counts into every file's stats; without them, the files' footers are read.
    if files["num_records"].null_count:
        num_rows = table.to_pyarrow_dataset().count_rows()
    else:
        num_rows = pc.sum(files["num_records"]).as_py() or 0
    return DatasetVersion(
        name=name,
        version=table.version(),
        schema_kind=_schema_kind(name, table),
        num_rows=num_rows,
        size_bytes=pc.sum(files["size_bytes"]).as_py() or 0,
        uri=lake.uri(name),
    )


def write_version(
    settings: Settings,
    name: str,
    schema_kind: DatasetSchema,
    rows: pa.Table,
    *,
    upload: str | None = None,
    created_by: str | None = None,
) -> DatasetVersion:
    """Append validated `rows` to the dataset as one Delta commit, creating the dataset on its first upload:
    all rows become visible in the new version, or none do. SchemaKindMismatch if the dataset holds another kind;
    ConcurrentWrite if other writers kept this commit from landing.

    Idempotent per `upload` (a token that a retry of the same upload carries again): the commit records it as a
    Delta transaction identifier (`txn`, app id `upload-<token>`), so a retry, even one racing the first attempt,
    finds the version the first wrote instead of appending the rows a second time. None: a write no retry will
    repeat."""
    check_name(name)
    upload = upload or uuid.uuid4().hex
    if not rows.schema.equals(ARROW_SCHEMAS[schema_kind]) or not rows.num_rows:
        raise ValueError(f"rows must be a non-empty table with the {schema_kind.value} schema; validate them first")
    lake = _lake(settings)
    app_id = f"upload-{upload}"
    properties = CommitProperties(
        custom_metadata={UPLOAD_KEY: upload, **({CREATED_BY_KEY: created_by} if created_by else {})},
        app_transactions=[Transaction(app_id, 1)],
    )
    # Twice at most: a first upload that loses the race to create the table (or to append) looks again.
    for _ in range(2):
        try:
            table = _open(lake, name, None)
        except DatasetNotFound:
            if _create(lake, name, schema_kind, rows, properties):
                return _version(lake, name, _open(lake, name, 0))
            continue
        if table.transaction_version(app_id) is not None:
            return _version(lake, name, _open(lake, name, _version_of_upload(lake, name, table, upload)))
        existing = _schema_kind(name, table)
        if existing is not schema_kind:
            raise SchemaKindMismatch(name, existing, schema_kind)
        try:
            # Written through the loaded table, which then stands at the version this commit got.
            write_deltalake(table, rows, mode="append", commit_properties=properties)
        except CommitFailedError:
            continue  # another commit landed first (this upload's own retry, perhaps): look again
        return _version(lake, name, table)
    raise ConcurrentWrite(f"other uploads to dataset {name!r} kept this one from committing; retry")


def _version_of_upload(lake: _Lake, name: str, table: DeltaTable, upload: str) -> int:
    """The version whose commit carries this upload's token."""
    for version, info in _commits(lake, name, table.version()):
        if info.get(UPLOAD_KEY) == upload:
            return version
    raise DatasetCorrupt(f"dataset {name!r} records upload {upload} but no commit of it")


def _create(lake: _Lake, name: str, schema_kind: DatasetSchema, rows: pa.Table, properties: CommitProperties) -> bool:
    """Create the dataset's table with `rows` as its version 0; False when another upload created it first.

    Exclusive: mode "error" refuses a table that exists, and without commit retries a lost race fails instead of
    being rebased by delta-rs 1.6 onto the winner's table as version 1, with its own schema and description
    replacing the winner's (rows of two kinds in one table)."""
    try:
        write_deltalake(
            lake.uri(name),
            rows,
            mode="error",
            name=name,
            description=_DESCRIPTION_PREFIX + schema_kind.value,
            configuration={"delta.appendOnly": "true"},
            storage_options=lake.storage_options,
            commit_properties=CommitProperties(
                custom_metadata=properties.custom_metadata,
                app_transactions=properties.app_transactions,
                max_commit_retries=0,
            ),
        )
    except DeltaError:
        if _exists(lake, name):
            return False
        raise
    return True


def _exists(lake: _Lake, name: str) -> bool:
    try:
        DeltaTable(lake.uri(name), storage_options=lake.storage_options)
    except TableNotFoundError:
        return False
    return True


def _commits(lake: _Lake, name: str, latest: int) -> Iterator[tuple[int, dict[str, Any]]]:
    """The commit info of each version up to `latest` whose commit file is still in the log, newest first."""
    listing = lake.filesystem.get_file_info(pafs.FileSelector(lake.log_path(name), allow_not_found=True))
    found = (_COMMIT_FILE.fullmatch(info.base_name) for info in listing)
    for version in sorted((int(match[1]) for match in found if match), reverse=True):
        if version > latest:
            continue  # committed after the snapshot the caller works from
        with lake.filesystem.open_input_stream(f"{lake.log_path(name)}/{version:020d}.json") as stream:
            actions = (json.loads(line) for line in stream.read().splitlines() if line.strip())
            info: dict[str, Any] = next((action["commitInfo"] for action in actions if "commitInfo" in action), {})
        yield version, info


def describe(settings: Settings, name: str, version: int | None = None) -> DatasetVersion:
    """The dataset at `version` (default: the latest)."""
    lake = _lake(settings)
    return _version(lake, name, _open(lake, name, version))


def first_uploader(settings: Settings, name: str) -> str | None:
    """Who uploaded version 0, as its commit says; None when the commit names nobody (not written by this gateway)
    or is no longer in the log. DatasetNotFound when there is no such dataset."""
    lake = _lake(settings)
    table = _open(lake, name, None)
    first = dict(_commits(lake, name, table.version())).get(0, {})
    uploader = first.get(CREATED_BY_KEY)
    return str(uploader) if uploader else None


def list_datasets(settings: Settings) -> list[DatasetVersion]:
    """Every dataset at its latest version, by name."""
    lake = _lake(settings)
    listing = lake.filesystem.get_file_info(pafs.FileSelector(lake.root_path, allow_not_found=True))
    names = sorted(
        info.base_name
        for info in listing
        if info.type == pafs.FileType.Directory and NAME_PATTERN.fullmatch(info.base_name)
    )
    datasets = []
    for name in names:
        try:
            datasets.append(_version(lake, name, _open(lake, name, None)))
        except DatasetNotFound:
            continue  # data files of a first upload that never committed: no version, so no dataset
        except DatasetCorrupt as error:
            log.warning("skipping %s/%s: %s", lake.root_uri, name, error)
    return datasets


def versions(settings: Settings, name: str, limit: int | None = None) -> list[VersionInfo]:
    """The dataset's versions, newest first (at most `limit`), as far back as its Delta log keeps commits."""
    lake = _lake(settings)
    table = _open(lake, name, None)
    # Walking back from the exact count of the latest version: an append-only table loses no rows.
    num_rows = _version(lake, name, table).num_rows
    history: list[VersionInfo] = []
    for version, info in _commits(lake, name, table.version()):
        if limit is not None and len(history) >= limit:
            break
        metrics = info.get("operationMetrics") or {}
        rows_added = int(metrics.get("num_added_rows", 0))
        history.append(
            VersionInfo(
                version=version,
                timestamp=datetime.fromtimestamp(info.get("timestamp", 0) / 1000, UTC),
                operation=info.get("operation", "UNKNOWN"),
                rows_added=rows_added,
                num_rows=num_rows,
                created_by=info.get(CREATED_BY_KEY),
                metrics=metrics,
            )
        )
        num_rows -= rows_added
    return history


def dataset_in_upload_order(table: DeltaTable) -> pads.Dataset:
    """The table version as a pyarrow dataset whose files are in the order they were written (oldest rows first);
    deltalake's own dataset lists the newest files first."""
    dataset = table.to_pyarrow_dataset()
    assert isinstance(dataset, pads.FileSystemDataset)
    files = pa.table(table.get_add_actions(flatten=True)).select(["path", "modification_time"]).to_pylist()
    position = {row["path"]: (row["modification_time"], row["path"]) for row in files}
    fragments = sorted(dataset.get_fragments(), key=lambda fragment: position[fragment.path])
    return pads.FileSystemDataset(fragments, dataset.schema, dataset.format, dataset.filesystem)


def read_rows(
    settings: Settings, name: str, version: int | None = None, *, limit: int = 100, offset: int = 0
) -> list[dict[str, Any]]:
    """Up to `limit` rows of the version (default: the latest) from the `offset`-th, oldest uploads first."""
    if limit < 0 or offset < 0:
        raise ValueError("limit and offset must not be negative")
    dataset = dataset_in_upload_order(open_table(settings, name, version))
    if offset >= dataset.count_rows():
        return []
    rows: list[dict[str, Any]] = dataset.head(offset + limit).slice(offset).to_pylist()
    return rows


def read_pinned_rows(
    settings: Settings, name: str, version: int | None, *, limit: int, offset: int
) -> tuple[int, list[dict[str, Any]]]:
    """The version read (default: the latest) and its rows, as `read_rows`; the version is pinned first, so that the
    rows and the version they are reported with agree while uploads land."""
    pinned = open_table(settings, name, version).version()
    return pinned, read_rows(settings, name, pinned, limit=limit, offset=offset)
