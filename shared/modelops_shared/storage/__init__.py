"""Object storage by URL: `open_store` picks the backend from the scheme (`file://` directory, `s3://` S3/MinIO)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

from minio import Minio

from ..settings import Settings
from .base import (
    DEFAULT_CHUNK_SIZE,
    InvalidKey,
    InvalidStoreURL,
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
    PutSource,
    StoreError,
)
from .local import LocalStore
from .s3 import S3Store

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "InvalidKey",
    "InvalidStoreURL",
    "LocalStore",
    "ObjectInfo",
    "ObjectNotFound",
    "ObjectStore",
    "PutSource",
    "S3Store",
    "StoreError",
    "open_store",
]


def open_store(url: str, settings: Settings) -> ObjectStore:
    """The store at `url` (`file:///abs/path` or `s3://bucket/prefix`); S3 endpoint and credentials come from settings.

    No I/O happens here: an S3 bucket is checked (and created if missing) on the store's first operation.
    """
    parts = urlsplit(url)
    if parts.scheme == "file":
        root = Path(url2pathname(parts.path))
        if parts.netloc not in ("", "localhost") or not root.is_absolute():
            raise InvalidStoreURL(f"{url!r} is not a local absolute path URL such as file:///srv/objects")
        return LocalStore(root)
    if parts.scheme == "s3":
        if not parts.netloc:
            raise InvalidStoreURL(f"{url!r} names no bucket; expected s3://bucket/prefix")
        client = Minio(
            settings.s3_endpoint,
            access_key=settings.s3_access_key.get_secret_value(),
            secret_key=settings.s3_secret_key.get_secret_value(),
            secure=settings.s3_secure,
            region=settings.s3_region,
        )
        return S3Store(client, bucket=parts.netloc, prefix=parts.path)
    raise InvalidStoreURL(f"unsupported store URL {url!r}; expected file:///abs/path or s3://bucket/prefix")
