"""The object-store interface every backend implements: `ObjectStore`, `ObjectInfo`, key rules and errors."""

from __future__ import annotations

import hashlib
import os
from abc import ABC, abstractmethod
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta

DEFAULT_CHUNK_SIZE = 1024 * 1024

PutSource = bytes | AsyncIterable[bytes] | os.PathLike[str]
"""What `put` accepts: the whole content, an async stream of chunks, or a local file to upload."""


class StoreError(Exception):
    """Base of every error the object store raises on its own account."""


class ObjectNotFound(StoreError, LookupError):
    """No object exists under the key."""

    def __init__(self, key: str) -> None:
        super().__init__(f"no object under key {key!r}")
        self.key = key


class InvalidKey(StoreError, ValueError):
    """The key is not a plain relative path inside the store (empty, absolute, `..`, …)."""


class InvalidStoreURL(StoreError, ValueError):
    """The store URL has an unsupported scheme or is malformed."""


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    size: int
    last_modified: datetime
    etag: str | None = None
    """The backend's entity tag; None where the backend keeps none (local files)."""


def check_key(key: str) -> None:
    """Raise InvalidKey unless `key` is a relative `/`-separated path that stays inside the store.

    Both backends apply the same rules, so a key that works on S3 also works on a local directory.
    """
    if not key:
        raise InvalidKey("object key is empty")
    if key.startswith("/"):
        raise InvalidKey(f"object key {key!r} is absolute; keys are relative to the store")
    if "\\" in key or "\x00" in key:
        raise InvalidKey(f"object key {key!r} contains a backslash or NUL byte")
    if any(part in ("", ".", "..") for part in key.split("/")):
        raise InvalidKey(f"object key {key!r} has an empty, '.' or '..' segment")


def check_prefix(prefix: str) -> None:
    """Raise InvalidKey unless every complete segment of `prefix` obeys the key rules; the last may be partial."""
    if prefix.startswith("/"):
        raise InvalidKey(f"prefix {prefix!r} is absolute; prefixes are relative to the store")
    directory = prefix.rpartition("/")[0]
    if directory:
        check_key(directory)


def check_chunk_size(chunk_size: int) -> None:
    """Raise ValueError unless `chunk_size` is positive: to file objects zero or less means "read everything"."""
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")


class ObjectStore(ABC):
    """Flat namespace of `/`-separated keys mapped to immutable byte objects."""

    @abstractmethod
    async def put(self, key: str, data: PutSource) -> ObjectInfo:
        """Store `data` under `key`, replacing any previous object; readers never see a partial object."""

    @abstractmethod
    async def get(self, key: str) -> bytes:
        """The whole object, read into memory."""

    @abstractmethod
    def stream(self, key: str, chunk_size: int = DEFAULT_CHUNK_SIZE) -> AsyncIterator[bytes]:
        """The object in chunks of at most `chunk_size` bytes, never read whole; a missing key raises on first use."""

    @abstractmethod
    async def stat(self, key: str) -> ObjectInfo:
        """Size and version details of the object."""

    @abstractmethod
    async def list(self, prefix: str = "") -> list[ObjectInfo]:
        """Every object whose key starts with `prefix` (plain string prefix, recursive), sorted by key."""

    @abstractmethod
    async def delete(self, key: str) -> None:
        """Remove the object; removing a missing object is not an error."""

    @abstractmethod
    async def presigned_url(self, key: str, expires: timedelta = timedelta(hours=1)) -> str:
        """A URL from which the object can be fetched without store credentials."""

    @abstractmethod
    def url_of(self, key: str) -> str:
        """The full URL of the object, e.g. `s3://bucket/prefix/key` or `file:///root/key`."""

    async def sha256(self, key: str) -> tuple[str, int]:
        """The object's sha256 (hex) and size, read streaming: what a verifier recomputes."""
        hasher, size = hashlib.sha256(), 0
        async for chunk in self.stream(key):
            hasher.update(chunk)
            size += len(chunk)
        return hasher.hexdigest(), size

    def key_of(self, url: str) -> str:
        """Inverse of `url_of` for an object or folder URL; InvalidKey when the URL lies outside this store."""
        root = self.url_of(_PROBE).removesuffix(_PROBE)
        if not url.startswith(root):
            raise InvalidKey(f"{url!r} is not in this store ({root})")
        key = url.removeprefix(root).rstrip("/")
        check_key(key)
        return key


_PROBE = "probe"
