"""The gateway's streaming multipart reader (web/multipart.py): fields and files parsed as they arrive, and every
size it holds in memory bounded — a text field, the number of text fields, a part's headers (python-multipart's own
bound), the whole body."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from modelops_gateway.web.multipart import (
    MAX_FIELD_BYTES,
    MAX_FIELDS,
    FormField,
    FormFile,
    UploadRejected,
    form_parts,
)

BOUNDARY = "b0undary"
HEADERS = {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}


def body(*parts: tuple[str, str | None, bytes], extra_header: str = "") -> bytes:
    out = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n{extra_header}\r\n".encode() + data + b"\r\n"
    return out + f"--{BOUNDARY}--\r\n".encode()


async def chunks(data: bytes, size: int = 1000) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def read(data: bytes, max_bytes: int = 10**9, **headers: str) -> list[tuple[str, str, bytes]]:
    parts = []
    async for part in form_parts({**HEADERS, **headers}, chunks(data), max_bytes):
        if isinstance(part, FormField):
            parts.append(("field", part.name, part.value.encode()))
        else:
            assert isinstance(part, FormFile)
            parts.append(("file", part.filename, b"".join([chunk async for chunk in part.chunks])))
    return parts


async def test_fields_and_files_arrive_in_order() -> None:
    parts = await read(body(("name", None, b"demo"), ("file", "a.gguf", b"GGUF" + b"x" * 5000)))
    assert parts == [("field", "name", b"demo"), ("file", "a.gguf", b"GGUF" + b"x" * 5000)]


@pytest.mark.parametrize(
    ("data", "slug"),
    [
        (body(*((f"f{i}", None, b"v") for i in range(MAX_FIELDS + 1))), "too-many-fields"),
        (body(("name", None, b"x" * (MAX_FIELD_BYTES + 1))), "field-too-large"),
        (body(("name", None, b"v"), extra_header=f"X-Padding: {'p' * 20_000}\r\n"), "part-headers-too-large"),
    ],
    ids=["field count", "field size", "part headers"],
)
async def test_what_is_held_in_memory_is_bounded(data: bytes, slug: str) -> None:
    with pytest.raises(UploadRejected) as refused:
        await read(data)
    assert (refused.value.status, refused.value.slug) == (413, slug)


async def test_the_body_is_bounded_as_it_streams_and_as_declared() -> None:
    data = body(("file", "big.bin", b"x" * 10_000))
    for headers in ({}, {"content-length": str(len(data))}):
        with pytest.raises(UploadRejected) as refused:
            await read(data, max_bytes=4096, **headers)
        assert (refused.value.status, refused.value.slug) == (413, "upload-too-large")
