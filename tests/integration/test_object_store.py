"""Object-store behaviour, written once and run against both backends: a local directory and S3 (moto server)."""

import asyncio
import hashlib
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

import httpx
import pytest
from modelops_shared.settings import Settings
from modelops_shared.storage import InvalidKey, InvalidStoreURL, ObjectNotFound, ObjectStore, open_store
from pydantic import SecretStr

MIB = 1024 * 1024


@pytest.fixture(params=["file", "s3"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "file":
        return (tmp_path / "objects").as_uri()
    # A fresh bucket per test isolates tests on the shared server and exercises bucket creation.
    return f"s3://test-{uuid.uuid4().hex[:12]}/some/prefix"


@pytest.fixture
def store(request: pytest.FixtureRequest, store_url: str) -> ObjectStore:
    if not store_url.startswith("s3://"):
        return open_store(store_url, Settings())
    s3 = request.getfixturevalue("moto_s3")
    settings = Settings(
        s3_endpoint=s3.endpoint,
        s3_access_key=SecretStr(s3.access_key),
        s3_secret_key=SecretStr(s3.secret_key),
        s3_region=s3.region,
        s3_secure=False,
    )
    return open_store(store_url, settings)


def local_path(file_url: str) -> Path:
    return Path(url2pathname(urlsplit(file_url).path))


def files_under(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file()]


async def fetch(url: str) -> bytes:
    if url.startswith("file://"):
        return await asyncio.to_thread(local_path(url).read_bytes)
    async with httpx.AsyncClient() as client:
        response = await client.get(url)
        response.raise_for_status()
        return response.content


async def collect(chunks: AsyncIterator[bytes]) -> list[bytes]:
    return [chunk async for chunk in chunks]


async def test_round_trip(store: ObjectStore) -> None:
    key = "models/tiny/weights.bin"
    data = b"hello, object store"

    info = await store.put(key, data)

    assert (info.key, info.size) == (key, len(data))
    assert info.last_modified.tzinfo is not None
    assert await store.get(key) == data
    chunks = await collect(store.stream(key, chunk_size=4))
    assert b"".join(chunks) == data
    assert len(chunks) == 5
    assert all(len(chunk) <= 4 for chunk in chunks)
    stat = await store.stat(key)
    assert (stat.key, stat.size) == (key, len(data))

    await store.delete(key)

    with pytest.raises(ObjectNotFound):
        await store.get(key)
    await store.delete(key)  # deleting what is already gone is fine


async def test_put_replaces_the_previous_object(store: ObjectStore) -> None:
    await store.put("a.txt", b"first version, longer")
    info = await store.put("a.txt", b"second")

    assert info.size == 6
    assert await store.get("a.txt") == b"second"


async def test_put_from_a_local_file(store: ObjectStore, tmp_path: Path) -> None:
    source = tmp_path / "upload.bin"
    source.write_bytes(b"\x00\x01" * 1000)

    info = await store.put("uploads/upload.bin", source)

    assert info.size == 2000
    assert await store.get("uploads/upload.bin") == source.read_bytes()


async def test_list_is_recursive_sorted_and_filtered_by_prefix(store: ObjectStore) -> None:
    for key in ["b", "ab", "a/2/3", "a/1"]:
        await store.put(key, key.encode())

    assert [info.key for info in await store.list()] == ["a/1", "a/2/3", "ab", "b"]
    assert [info.key for info in await store.list("a/")] == ["a/1", "a/2/3"]
    assert [info.key for info in await store.list("a")] == ["a/1", "a/2/3", "ab"]
    assert [info.size for info in await store.list("a/2")] == [5]
    assert await store.list("missing/") == []


async def test_missing_key_raises_object_not_found(store: ObjectStore) -> None:
    with pytest.raises(ObjectNotFound) as raised:
        await store.get("nope/missing.bin")
    assert raised.value.key == "nope/missing.bin"
    assert isinstance(raised.value, LookupError)
    with pytest.raises(ObjectNotFound):
        await store.stat("nope/missing.bin")
    with pytest.raises(ObjectNotFound):
        await collect(store.stream("nope/missing.bin"))


async def test_a_prefix_is_not_an_object(store: ObjectStore) -> None:
    await store.put("dir/file", b"x")

    with pytest.raises(ObjectNotFound):
        await store.stat("dir")
    await store.delete("dir")
    assert await store.get("dir/file") == b"x"


@pytest.mark.parametrize("key", ["../escaped", "a/../../escaped", "/etc/passwd", "", "a//b", "./a", "a\\..\\b"])
async def test_keys_that_escape_the_store_are_rejected(store: ObjectStore, tmp_path: Path, key: str) -> None:
    with pytest.raises(InvalidKey) as raised:
        await store.put(key, b"x")
    assert isinstance(raised.value, ValueError)
    with pytest.raises(InvalidKey):
        await store.get(key)
    with pytest.raises(InvalidKey):
        await store.delete(key)
    with pytest.raises(InvalidKey):
        store.url_of(key)
    assert not (tmp_path / "escaped").exists()


async def test_list_rejects_a_prefix_that_escapes_the_store(store: ObjectStore) -> None:
    with pytest.raises(InvalidKey):
        await store.list("../")
    with pytest.raises(InvalidKey):
        await store.list("/abs")


async def test_presigned_url_serves_the_object(store: ObjectStore) -> None:
    await store.put("shared/report.json", b'{"ok": true}')

    url = await store.presigned_url("shared/report.json")

    assert await fetch(url) == b'{"ok": true}'


async def test_url_of_names_the_object_under_the_store_url(store: ObjectStore, store_url: str) -> None:
    assert store.url_of("datasets/d1/part-0.parquet") == f"{store_url}/datasets/d1/part-0.parquet"


async def test_large_streamed_put_round_trips(store: ObjectStore) -> None:
    sent = hashlib.sha256()

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            chunk = os.urandom(MIB)
            sent.update(chunk)
            yield chunk

    info = await store.put("big/blob.bin", chunks())

    assert info.size == 20 * MIB
    received = hashlib.sha256()
    count = 0
    async for chunk in store.stream("big/blob.bin", chunk_size=MIB):
        assert len(chunk) <= MIB
        received.update(chunk)
        count += 1
    assert received.hexdigest() == sent.hexdigest()
    assert count >= 20


async def test_a_failed_streamed_put_keeps_the_previous_object(store: ObjectStore, store_url: str) -> None:
    await store.put("model.bin", b"good")

    async def broken() -> AsyncIterator[bytes]:
        yield b"partial"
        raise RuntimeError("source went away")

    with pytest.raises(RuntimeError, match="source went away"):
        await store.put("model.bin", broken())

    assert await store.get("model.bin") == b"good"
    assert [info.key for info in await store.list()] == ["model.bin"]
    if store_url.startswith("file://"):
        root = local_path(store_url)
        assert await asyncio.to_thread(files_under, root) == [root / "model.bin"]  # no staged file left behind


@pytest.mark.parametrize(
    "url", ["ftp://host/x", "file://host/srv/objects", "file:relative/objects", "s3:///prefix-without-bucket"]
)
def test_open_store_rejects_unsupported_urls(url: str) -> None:
    with pytest.raises(InvalidStoreURL):
        open_store(url, Settings())


async def test_sha256_streams_the_stored_bytes(store: ObjectStore) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    await store.put("digests/blob.bin", data)

    assert await store.sha256("digests/blob.bin") == (hashlib.sha256(data).hexdigest(), len(data))
    with pytest.raises(ObjectNotFound):
        await store.sha256("digests/missing.bin")
