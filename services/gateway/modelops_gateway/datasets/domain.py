"""The dataset errors a client may see: each carries a stable slug, the HTTP status it maps to, and a safe message."""

from __future__ import annotations

from typing import Any

from modelops_contracts import DatasetSchema
from modelops_shared.errors import DomainError


class DatasetError(DomainError):
    """Base of every error this package raises on its own account; `str(error)` is safe to show a client."""

    slug = "dataset-error"
    status = 400


class InvalidDatasetName(DatasetError, ValueError):
    slug = "invalid-dataset-name"
    status = 422


class UnsupportedFormat(DatasetError, ValueError):
    slug = "unsupported-dataset-format"
    status = 415


class DecodedTooLarge(DatasetError):
    """A compressed file (Parquet) whose rows would take more memory to check than the gateway allows."""

    slug = "decoded-too-large"
    status = 413

    def __init__(self, rows: int, decoded_bytes: int, max_rows: int, max_decoded_bytes: int) -> None:
        super().__init__(
            f"the file holds {rows} rows"
            + (f" and decodes to more than {decoded_bytes} bytes" if decoded_bytes else "")
            + f"; a dataset upload may hold at most {max_rows} rows and decode to {max_decoded_bytes} bytes",
            max_rows=max_rows,
            max_decoded_bytes=max_decoded_bytes,
        )


class UploadTooLarge(DatasetError):
    slug = "upload-too-large"
    status = 413

    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"a dataset upload may be at most {max_bytes} bytes")
        self.max_bytes = max_bytes

    @property
    def extensions(self) -> dict[str, Any]:
        return {"max_bytes": self.max_bytes}


class DatasetNotFound(DatasetError, LookupError):
    slug = "dataset-not-found"
    status = 404

    def __init__(self, name: str) -> None:
        super().__init__(f"no dataset {name!r}")
        self.name = name


class VersionNotFound(DatasetError, LookupError):
    slug = "dataset-version-not-found"
    status = 404

    def __init__(self, name: str, version: int, latest: int) -> None:
        super().__init__(f"dataset {name!r} has no version {version}; its versions are 0 to {latest}")
        self.name = name
        self.version = version
        self.latest = latest


class SchemaKindMismatch(DatasetError):
    """A dataset's schema kind is fixed by its first version."""

    slug = "dataset-schema-mismatch"
    status = 409

    def __init__(self, name: str, existing: DatasetSchema, requested: DatasetSchema) -> None:
        super().__init__(
            f"dataset {name!r} holds {existing.value} rows; an upload of {requested.value} rows needs another name"
        )
        self.existing = existing
        self.requested = requested

    @property
    def extensions(self) -> dict[str, Any]:
        return {"schema": self.existing.value}


class ConcurrentWrite(DatasetError):
    """Another writer changed the table's metadata (typically: created it) while this upload was committing."""

    slug = "dataset-write-conflict"
    status = 409


class DatasetCorrupt(DatasetError):
    """The folder holds a Delta table this package did not create, or one whose metadata was altered."""

    slug = "dataset-corrupt"
    status = 500


class QueryRejected(DatasetError):
    """Not a single read-only SELECT statement, or SQL that does not parse."""

    slug = "query-rejected"


class QueryFailed(DatasetError):
    """DuckDB refused or failed the query: an unknown column, a bad cast, a forbidden file access, …"""

    slug = "query-failed"


class QueryResultTooLarge(DatasetError):
    slug = "query-result-too-large"
    status = 422

    def __init__(self, max_bytes: int) -> None:
        super().__init__(
            f"the result is over {max_bytes} bytes; select fewer columns or rows, or aggregate", max_bytes=max_bytes
        )


class QueryTimeout(DatasetError):
    slug = "query-timeout"

    def __init__(self, timeout_s: float) -> None:
        super().__init__(f"the query ran longer than {timeout_s:g} s and was stopped")
        self.timeout_s = timeout_s

    @property
    def extensions(self) -> dict[str, Any]:
        return {"timeout_s": self.timeout_s}


class FileNotFound(DatasetError, LookupError):
    slug = "file-not-found"
    status = 404

    def __init__(self, file_id: str) -> None:
        super().__init__(f"no file {file_id!r}")
