"""Datasets: validate uploads row by row, keep each dataset as a versioned Delta Lake table, query a version
read-only, announce each version once; the routes over them (api.py) and OpenAI's files API.

Below api.py nothing speaks HTTP. The library's errors are `DatasetError`s (domain.py), domain errors with a slug,
a status and a message safe to show; a malformed upload is the multipart parser's `UploadRejected`. Validation of
a stream is async; the library's other calls block (run them in a worker thread). The names below are the dataset
library's public face, for code outside the package (tests, tools)."""

from .domain import (
    ConcurrentWrite,
    DatasetCorrupt,
    DatasetError,
    DatasetNotFound,
    DecodedTooLarge,
    InvalidDatasetName,
    QueryFailed,
    QueryRejected,
    QueryResultTooLarge,
    QueryTimeout,
    SchemaKindMismatch,
    UnsupportedFormat,
    UploadTooLarge,
    VersionNotFound,
)
from .lake import (
    DatasetVersion,
    VersionInfo,
    check_name,
    describe,
    list_datasets,
    open_table,
    read_rows,
    table_uri,
    versions,
    write_version,
)
from .query import QueryColumn, QueryResult, check_query, run_query
from .validation import (
    ARROW_SCHEMAS,
    DatasetFormat,
    DatasetInvalid,
    RowError,
    ValidationReport,
    format_of,
    spooled,
    validate_file,
    validate_upload,
)

__all__ = [
    "ARROW_SCHEMAS",
    "ConcurrentWrite",
    "DatasetCorrupt",
    "DatasetError",
    "DatasetFormat",
    "DatasetInvalid",
    "DatasetNotFound",
    "DatasetVersion",
    "DecodedTooLarge",
    "InvalidDatasetName",
    "QueryColumn",
    "QueryFailed",
    "QueryRejected",
    "QueryResult",
    "QueryResultTooLarge",
    "QueryTimeout",
    "RowError",
    "SchemaKindMismatch",
    "UnsupportedFormat",
    "UploadTooLarge",
    "ValidationReport",
    "VersionInfo",
    "VersionNotFound",
    "check_name",
    "check_query",
    "describe",
    "format_of",
    "list_datasets",
    "open_table",
    "read_rows",
    "run_query",
    "spooled",
    "table_uri",
    "validate_file",
    "validate_upload",
    "versions",
    "write_version",
]
