"""Multipart bodies parsed as they arrive (`form_parts`), and artifact uploads built on them: each file part is
hashed (sha256, size) on its way through and stored under a prefix, text fields are kept (small) for the route to
validate (`form_model`), and on any failure whatever was stored is removed. Artifact files are never spooled to
local disk, and nothing is read before the caller is authorised (the route's dependencies run first)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from modelops_contracts import FileDigest
from modelops_shared.problems import Problem
from modelops_shared.storage import InvalidKey, ObjectStore
from modelops_shared.storage.base import check_key
from pydantic import BaseModel, ValidationError
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

FILES_FIELD = "files"
MAX_FIELD_BYTES = 64 * 1024
MAX_SEGMENT_BYTES = 255  # what common filesystems allow per path segment
MAX_PATH_BYTES = 1024


@dataclass(frozen=True)
class _PartStart:
    name: str
    filename: str | None


class _PartEnd:
    """Marks the end of the current part's data."""


_Event = _PartStart | bytes | _PartEnd
_END = _PartEnd()
_Form = TypeVar("_Form", bound=BaseModel)


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


@dataclass
class Upload:
    """What a multipart body held: its files, stored under `prefix`, and its text fields."""

    store: ObjectStore
    prefix: str
    files: list[FileDigest] = field(default_factory=list)
    fields: dict[str, list[str]] = field(default_factory=dict)

    async def discard(self) -> None:
        """Remove every stored file (the request failed, or an earlier identical one already took effect)."""
        for file in self.files:
            await self.store.delete(f"{self.prefix}/{file.path}")


async def receive_upload(
    request: Request, store: ObjectStore, prefix: str, *, max_bytes: int, max_files: int
) -> Upload:
    """Stream the body's `files` parts to `<prefix>/<filename>`, where each filename is a relative path;
    all-or-nothing: a failure at any point removes what was stored and raises."""
    upload = Upload(store, prefix)
    try:
        async with aclosing(form_parts(request, max_bytes)) as parts:
            async for part in parts:
                if isinstance(part, FormField):
                    upload.fields.setdefault(part.name, []).append(part.value)
                    continue
                if part.name != FILES_FIELD:
                    raise Problem(422, "unexpected-file", f"files go in `{FILES_FIELD}` parts, not `{part.name}`")
                if len(upload.files) >= max_files:
                    raise Problem(422, "too-many-files", f"an upload holds at most {max_files} files")
                path = _checked_path(part.filename, upload.files)
                upload.files.append(await _store_file(store, f"{prefix}/{path}", path, part.chunks))
    except BaseException:
        await upload.discard()
        raise
    if not upload.files:
        raise Problem(422, "no-files", f"send at least one `{FILES_FIELD}` part whose filename is its relative path")
    return upload


async def form_parts(request: Request, max_bytes: int) -> AsyncGenerator[FormField | FormFile, None]:
    """The multipart body's parts in order, as they arrive; 413 past `max_bytes`, 415 if it is not multipart."""
    async with aclosing(_events(request, max_bytes)) as events:
        async for event in events:
            if not isinstance(event, _PartStart):
                continue  # the rest of a file part its reader left unread
            if event.filename is None:
                yield FormField(event.name, await _field_text(event.name, events))
            else:
                yield FormFile(event.name, event.filename, _part_body(events))


def form_model(model: type[_Form], fields: dict[str, list[str]]) -> _Form:
    """The text fields as `model`, each sent once; invalid ones answer FastAPI's own 422, located in the body."""
    repeated = [name for name, values in fields.items() if len(values) > 1]
    if repeated:
        raise Problem(422, "repeated-field", f"send each field once: {', '.join(sorted(repeated))}")
    try:
        return model.model_validate({name: values[0] for name, values in fields.items()})
    except ValidationError as error:
        # The same 422 body as for any other invalid request, located in the body like FastAPI's own.
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in error.errors(include_url=False, include_context=False)]
        ) from None


def _too_large(max_bytes: int) -> Problem:
    return Problem(413, "upload-too-large", f"an upload may be at most {max_bytes} bytes", max_bytes=max_bytes)


async def _events(request: Request, max_bytes: int) -> AsyncGenerator[_Event, None]:
    """The body as part starts, data chunks and part ends, parsed as it arrives."""
    media_type, params = parse_options_header(request.headers.get("content-type"))
    if media_type != b"multipart/form-data" or not params.get(b"boundary"):
        raise Problem(415, "unsupported-media-type", "send the upload as multipart/form-data")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(max_bytes)

    pending: list[_Event] = []
    header_name, header_value = bytearray(), bytearray()
    headers: dict[bytes, bytes] = {}

    def on_header_end() -> None:
        headers[bytes(header_name).lower()] = bytes(header_value)
        header_name.clear()
        header_value.clear()

    def on_headers_finished() -> None:
        pending.append(_part_start(headers))
        headers.clear()

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
        async for chunk in request.stream():
            received += len(chunk)
            if received > max_bytes:
                raise _too_large(max_bytes)
            parser.write(chunk)
            batch = pending.copy()
            pending.clear()
            for event in batch:
                yield event
        parser.finalize()
    except FormParserError:
        raise Problem(400, "malformed-multipart", "the multipart body cannot be parsed") from None


def _part_start(headers: dict[bytes, bytes]) -> _PartStart:
    disposition, options = parse_options_header(headers.get(b"content-disposition", b"").decode("latin-1"))
    if disposition != b"form-data" or b"name" not in options:
        raise Problem(400, "malformed-multipart", "every part needs `Content-Disposition: form-data; name=…`")
    filename = options.get(b"filename")
    return _PartStart(_text(options[b"name"]), None if filename is None else _text(filename))


def _text(raw: bytes) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise Problem(422, "invalid-encoding", "part names and filenames must be UTF-8") from None


async def _part_body(events: AsyncIterator[_Event]) -> AsyncIterator[bytes]:
    """The current part's data, up to its end."""
    async for event in events:
        if isinstance(event, _PartEnd):
            return
        if isinstance(event, bytes):
            yield event
    raise Problem(400, "malformed-multipart", "the body ended inside a part")


async def _field_text(name: str, events: AsyncIterator[_Event]) -> str:
    data = bytearray()
    async for chunk in _part_body(events):
        data.extend(chunk)
        if len(data) > MAX_FIELD_BYTES:
            raise Problem(413, "field-too-large", f"field `{name}` exceeds {MAX_FIELD_BYTES} bytes")
    return _text(bytes(data))


def _checked_path(path: str, stored: list[FileDigest]) -> str:
    """`path` if it is a relative path (`tokenizer/tokenizer.json`) that no other file of the upload clashes with."""
    try:
        check_key(path)
    except InvalidKey as error:
        raise Problem(422, "invalid-file-path", f"{error}; filenames are relative paths such as a/b.json") from None
    if len(path.encode()) > MAX_PATH_BYTES or any(len(s.encode()) > MAX_SEGMENT_BYTES for s in path.split("/")):
        raise Problem(422, "invalid-file-path", f"{path!r} is too long")
    for other in stored:
        if other.path == path or other.path.startswith(f"{path}/") or path.startswith(f"{other.path}/"):
            # A file cannot also be a folder of another file, and a path appears once.
            raise Problem(422, "conflicting-file-paths", f"{path!r} clashes with {other.path!r}")
    return path


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


async def _store_file(store: ObjectStore, key: str, path: str, chunks: AsyncIterator[bytes]) -> FileDigest:
    hashed = Hashed(chunks)
    await store.put(key, aiter(hashed))
    return FileDigest(path=path, sha256=hashed.sha256, size=hashed.size)
