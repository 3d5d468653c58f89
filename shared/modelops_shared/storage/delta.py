"""Datasets as Delta Lake tables under `<object store>/datasets/<name>`: where a table lives, how to reach it, and
reading one exact version into Arrow."""

from __future__ import annotations

from urllib.parse import urlsplit

import pyarrow as pa
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from ..settings import Settings
from .base import InvalidKey, ObjectNotFound, check_key

DATASETS_PREFIX = "datasets"


class DatasetNotFound(ObjectNotFound):
    """No Delta table under the dataset's name, or the table has no such version."""

    def __init__(self, name: str, version: int) -> None:
        super().__init__(f"{DATASETS_PREFIX}/{name}")
        self.args = (f"dataset {name!r} has no version {version}",)


def dataset_table_uri(settings: Settings, name: str) -> str:
    """The table's URL: `<store URL>/datasets/<name>` (deltalake reads `file://` and `s3://` URLs alike)."""
    if "/" in name:
        raise InvalidKey(f"dataset name {name!r} must not contain '/'")
    check_key(name)
    return f"{settings.store_url.rstrip('/')}/{DATASETS_PREFIX}/{name}"


def delta_storage_options(settings: Settings) -> dict[str, str]:
    """deltalake's `storage_options` for the configured store: empty for local files, S3 endpoint and credentials
    otherwise. Commits on S3 rely on conditional writes (`If-None-Match`, which AWS, MinIO and moto honour), the
    delta-rs 1.x default, so AWS_S3_ALLOW_UNSAFE_RENAME is deliberately not set: it would let two writers commit
    the same version."""
    if urlsplit(settings.store_url).scheme != "s3":
        return {}
    options = {
        "AWS_ENDPOINT_URL": f"{'https' if settings.s3_secure else 'http'}://{settings.s3_endpoint}",
        "AWS_ACCESS_KEY_ID": settings.s3_access_key.get_secret_value(),
        "AWS_SECRET_ACCESS_KEY": settings.s3_secret_key.get_secret_value(),
        "AWS_REGION": settings.s3_region,
    }
    if not settings.s3_secure:
        options["AWS_ALLOW_HTTP"] = "true"
    return options


def read_dataset(settings: Settings, name: str, version: int) -> pa.Table:
    """Version `version` of dataset `name` exactly as it was committed; DatasetNotFound when either is missing."""
    try:
        table = DeltaTable(dataset_table_uri(settings, name), storage_options=delta_storage_options(settings))
    except TableNotFoundError:
        raise DatasetNotFound(name, version) from None
    # Checked against the latest version first: deltalake reports a version past the log's end as a generic error.
    if not 0 <= version <= table.version():
        raise DatasetNotFound(name, version)
    table.load_as_version(version)
    return table.to_pyarrow_table()
