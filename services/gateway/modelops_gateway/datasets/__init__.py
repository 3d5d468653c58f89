"""Datasets: validate uploads row by row, keep each dataset as a versioned Delta Lake table, query a version read-only.

A library for the routes: nothing here speaks HTTP or Kafka. Every error is a `DatasetError` with a slug, an HTTP
status and a message safe to show. Validation of a stream is async; the rest blocks (run it in a worker thread).
"""

from .errors import (
    ConcurrentWrite,
    DatasetCorrupt,
    DatasetError,
    DatasetNotFound,
    InvalidDatasetName,
    QueryFailed,
    QueryRejected,
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
    "InvalidDatasetName",
    "QueryColumn",
    "QueryFailed",
    "QueryRejected",
    "QueryResult",
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
