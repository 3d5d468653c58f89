"""Object store on S3 or MinIO (`s3://bucket/prefix`) through the minio client, its blocking calls run in threads."""

from __future__ import annotations

import asyncio
import builtins
import io
import os
from collections.abc import AsyncIterable, AsyncIterator, Callable
from datetime import timedelta
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from minio import Minio
from minio.datatypes import Object
from minio.error import S3Error

from .base import (
    DEFAULT_CHUNK_SIZE,
    InvalidKey,
    InvalidStoreURL,
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
    PutSource,
    StoreError,
    check_chunk_size,
    check_key,
    check_prefix,
)

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

P = ParamSpec("P")
T = TypeVar("T")

# Part size for streams of unknown length: minio keeps about (parallel uploads + 1) parts in memory,
# and S3's 10,000-part limit caps a streamed object at 10,000 times this (80 GB).
STREAM_PART_SIZE = 8 * 1024 * 1024

_MISSING_CODES = frozenset({"NoSuchKey", "NoSuchObject"})


class S3Store(ObjectStore):
    """Objects under `prefix/` in `bucket`; the bucket is created on first use if it does not exist."""

    def __init__(self, client: Minio, bucket: str, prefix: str = "") -> None:
        self._client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        if self.prefix:
            try:
                check_key(self.prefix)
            except InvalidKey as exc:
                raise InvalidStoreURL(f"bad prefix {prefix!r} for bucket {bucket!r}: {exc}") from exc
        self._bucket_ready = False

    def _name(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    async def _call(self, key: str, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        if not self._bucket_ready:
            await asyncio.to_thread(self._ensure_bucket)
            self._bucket_ready = True
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except S3Error as exc:
            if exc.code in _MISSING_CODES:
                raise ObjectNotFound(key) from exc
            raise

    def _ensure_bucket(self) -> None:
        if self._client.bucket_exists(self.bucket):
            return
        try:
            self._client.make_bucket(self.bucket)
        except S3Error as exc:
            if exc.code != "BucketAlreadyOwnedByYou":
                raise  # another starter creating it between our check and create is the only benign case

    async def put(self, key: str, data: PutSource) -> ObjectInfo:
        name = self._name(key)
        if isinstance(data, bytes):
            await self._call(key, self._client.put_object, self.bucket, name, io.BytesIO(data), len(data))
        elif isinstance(data, os.PathLike):
            await self._call(key, self._client.fput_object, self.bucket, name, os.fspath(data))
        else:
            reader = io.BufferedReader(_AsyncChunkReader(data, asyncio.get_running_loop()))
            await self._call(key, self._client.put_object, self.bucket, name, reader, -1, part_size=STREAM_PART_SIZE)
        return await self.stat(key)

    async def get(self, key: str) -> bytes:
        response = await self._call(key, self._client.get_object, self.bucket, self._name(key))
        try:
            return await asyncio.to_thread(response.read)
        finally:
            response.close()
            response.release_conn()

    async def stream(self, key: str, chunk_size: int = DEFAULT_CHUNK_SIZE) -> AsyncIterator[bytes]:
        check_chunk_size(chunk_size)
        response = await self._call(key, self._client.get_object, self.bucket, self._name(key))
        try:
            while chunk := await asyncio.to_thread(response.read, chunk_size):
                yield chunk
        finally:
            response.close()
            response.release_conn()

    async def stat(self, key: str) -> ObjectInfo:
        return _info(key, await self._call(key, self._client.stat_object, self.bucket, self._name(key)))

    async def list(self, prefix: str = "") -> builtins.list[ObjectInfo]:
        check_prefix(prefix)
        base = f"{self.prefix}/" if self.prefix else ""
        objects = await self._call(prefix, self._list_objects, base + prefix)
        infos = [
            _info(obj.object_name.removeprefix(base), obj)
            for obj in objects
            # Folder markers that S3 consoles create are not objects under our key rules.
            if obj.object_name is not None and not obj.is_dir
        ]
        return sorted(infos, key=lambda info: info.key)

    def _list_objects(self, name_prefix: str) -> builtins.list[Object]:
        return builtins.list(self._client.list_objects(self.bucket, prefix=name_prefix, recursive=True))

    async def delete(self, key: str) -> None:
        await self._call(key, self._client.remove_object, self.bucket, self._name(key))

    async def presigned_url(self, key: str, expires: timedelta = timedelta(hours=1)) -> str:
        return await self._call(key, self._client.presigned_get_object, self.bucket, self._name(key), expires=expires)

    def url_of(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._name(key)}"


def _info(key: str, obj: Object) -> ObjectInfo:
    if obj.size is None or obj.last_modified is None:
        raise StoreError(f"the server reported no size or modification time for {key!r}")
    return ObjectInfo(key=key, size=obj.size, last_modified=obj.last_modified, etag=obj.etag)


class _AsyncChunkReader(io.RawIOBase):
    """Blocking file view of an async chunk stream: minio reads it in a worker thread while the loop produces."""

    def __init__(self, chunks: AsyncIterable[bytes], loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._chunks = aiter(chunks)
        self._loop = loop
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        while not self._pending:
            chunk = asyncio.run_coroutine_threadsafe(self._next_chunk(), self._loop).result()
            if chunk is None:
                return 0
            self._pending = memoryview(chunk)
        view = memoryview(buffer).cast("B")
        size = min(len(view), len(self._pending))
        view[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size

    async def _next_chunk(self) -> bytes | None:
        return await anext(self._chunks, None)
