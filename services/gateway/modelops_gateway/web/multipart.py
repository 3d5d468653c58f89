"""Multipart bodies parsed as they arrive: `form_parts` yields text fields (small, read whole) and file parts (to
stream on), and spools nothing to disk. Framework-free, so that the upload logic of datasets and artifacts can read
parts without knowing the request; what is malformed or too large is an `UploadRejected`."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from modelops_shared.errors import DomainError
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

MAX_FIELD_BYTES = 64 * 1024
MAX_FIELDS = 64  # text parts per body: the routes read a handful


class UploadRejected(DomainError):
    """An upload refused as a whole; `status` and `slug` say why (413 too large, 415 not multipart, …)."""

    def __init__(self, status: int, slug: str, detail: str, **extensions: Any) -> None:
        super().__init__(detail, slug=slug, status=status, **extensions)


@dataclass(frozen=True)
class _PartStart:
    name: str
    filename: str | None


class _PartEnd:
    """Marks the end of the current part's data."""


_Event = _PartStart | bytes | _PartEnd
_END = _PartEnd()


@dataclass(frozen=True)
class FormField:
    """A text part, read whole (at most MAX_FIELD_BYTES)."""

    name: str
    value: str


@dataclass(frozen=True)
class FormFile:
    """A file part: read `chunks` before asking for the next part; whatever is left unread is skipped."""

    name: str
    filename: str
    chunks: AsyncIterator[bytes]


async def form_parts(
    headers: Mapping[str, str], body: AsyncIterator[bytes], max_bytes: int
) -> AsyncGenerator[FormField | FormFile, None]:
    """The multipart body's parts in order, as they arrive; 413 past `max_bytes` or MAX_FIELDS text fields, 415 if
    it is not multipart."""
    fields = 0
    async with aclosing(_events(headers, body, max_bytes)) as events:
        async for event in events:
            if not isinstance(event, _PartStart):
                continue  # the rest of a file part its reader left unread
            if event.filename is None:
                fields += 1
                if fields > MAX_FIELDS:
                    raise UploadRejected(413, "too-many-fields", f"a form may hold at most {MAX_FIELDS} text fields")
                yield FormField(event.name, await _field_text(event.name, events))
            else:
                yield FormFile(event.name, event.filename, _part_body(events))


def _too_large(max_bytes: int) -> UploadRejected:
    return UploadRejected(413, "upload-too-large", f"an upload may be at most {max_bytes} bytes", max_bytes=max_bytes)


async def _events(
    headers: Mapping[str, str], body: AsyncIterator[bytes], max_bytes: int
) -> AsyncGenerator[_Event, None]:
    """The body as part starts, data chunks and part ends, parsed as it arrives."""
    media_type, params = parse_options_header(headers.get("content-type"))
    if media_type != b"multipart/form-data" or not params.get(b"boundary"):
        raise UploadRejected(415, "unsupported-media-type", "send the upload as multipart/form-data")
    declared = headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(max_bytes)

    pending: list[_Event] = []
    header_name, header_value = bytearray(), bytearray()
    part_headers: dict[bytes, bytes] = {}

    def on_header_end() -> None:
        part_headers[bytes(header_name).lower()] = bytes(header_value)
        header_name.clear()
        header_value.clear()

    def on_headers_finished() -> None:
        pending.append(_part_start(part_headers))
        part_headers.clear()

    parser = MultipartParser(
        params[b"boundary"],
        {
            "on_header_field": lambda data, start, end: header_name.extend(data[start:end]),
            "on_header_value": lambda data, start, end: header_value.extend(data[start:end]),
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": lambda data, start, end: pending.append(bytes(data[start:end])),
            "on_part_end": lambda: pending.append(_END),
        },
    )
    received = 0
    try:
        async for chunk in body:
            received += len(chunk)
            if received > max_bytes:
                raise _too_large(max_bytes)
            parser.write(chunk)
            batch = pending.copy()
            pending.clear()
            for event in batch:
                yield event
        parser.finalize()
    except FormParserError as error:
        # python-multipart bounds each part's headers itself (its MAX_HEADER_SIZE) and says so only in words.
        if "header size" in str(error):
            raise UploadRejected(413, "part-headers-too-large", "a part's headers are too large") from None
        raise UploadRejected(400, "malformed-multipart", "the multipart body cannot be parsed") from None


def _part_start(headers: dict[bytes, bytes]) -> _PartStart:
    disposition, options = parse_options_header(headers.get(b"content-disposition", b"").decode("latin-1"))
    if disposition != b"form-data" or b"name" not in options:
        raise UploadRejected(400, "malformed-multipart", "every part needs `Content-Disposition: form-data; name=…`")
    filename = options.get(b"filename")
    return _PartStart(_text(options[b"name"]), None if filename is None else _text(filename))


def _text(raw: bytes) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise UploadRejected(422, "invalid-encoding", "part names and filenames must be UTF-8") from None


async def _part_body(events: AsyncIterator[_Event]) -> AsyncIterator[bytes]:
    """The current part's data, up to its end."""
    async for event in events:
        if isinstance(event, _PartEnd):
            return
        if isinstance(event, bytes):
            yield event
    raise UploadRejected(400, "malformed-multipart", "the body ended inside a part")


async def _field_text(name: str, events: AsyncIterator[_Event]) -> str:
    data = bytearray()
    async for chunk in _part_body(events):
        data.extend(chunk)
        if len(data) > MAX_FIELD_BYTES:
            raise UploadRejected(413, "field-too-large", f"field `{name}` exceeds {MAX_FIELD_BYTES} bytes")
    return _text(bytes(data))


class Hashed:
    """The chunks of a stream passed through as they come, hashed (sha256) and counted on the way."""

    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self._chunks = chunks
        self._hasher = hashlib.sha256()
        self.size = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._chunks:
            self._hasher.update(chunk)
            self.size += len(chunk)
            yield chunk

    @property
    def sha256(self) -> str:
        return self._hasher.hexdigest()
