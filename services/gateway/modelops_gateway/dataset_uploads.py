"""The one path from an uploaded dataset file to an announced version, for `POST /v1/datasets` and `POST /v1/files`:
the file part spooled and hashed as it streams, every row validated, then, once per Idempotency-Key, a new Delta
version committed and announced (dataset_announcer.py explains the order)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, aclosing, asynccontextmanager
from dataclasses import dataclass
from typing import IO, Any, ParamSpec, TypeVar

import asyncpg
from fastapi import Request, Response
from modelops_contracts import DatasetSchema
from modelops_shared.problems import Problem

from .auth import Caller
from .context import Gateway
from .dataset_announcer import announce
from .datasets import DatasetError, DatasetFormat, DatasetVersion, spooled, validate_file, write_version
from .idempotency import Idempotency
from .uploads import FormField, Hashed, form_parts

FILE_FIELD = "file"

_P = ParamSpec("_P")
_T = TypeVar("_T")


def problem_of(error: DatasetError) -> Problem:
    """The problem response a dataset error maps to: its slug, status, message and extension members."""
    return Problem(error.status, error.slug, str(error), **error.extensions)


async def in_worker(call: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
    """A blocking dataset library call, run in a worker thread so the event loop keeps serving; its DatasetError
    becomes the problem it maps to."""
    try:
        return await asyncio.to_thread(call, *args, **kwargs)
    except DatasetError as error:
        raise problem_of(error) from None


@dataclass(frozen=True)
class ReceivedFile:
    """The uploaded file, spooled to a temporary file (gone when its block exits), with its digest."""

    filename: str
    file: IO[bytes]
    sha256: str
    size: int


@dataclass(frozen=True)
class DatasetForm:
    fields: dict[str, list[str]]
    file: ReceivedFile


@asynccontextmanager
async def received_form(request: Request, *, max_bytes: int) -> AsyncIterator[DatasetForm]:
    """The multipart body's text fields and its one `file` part, read to the end (parts in any order)."""
    fields: dict[str, list[str]] = {}
    received: ReceivedFile | None = None
    async with AsyncExitStack() as stack:
        async with aclosing(form_parts(request, max_bytes)) as parts:
            async for part in parts:
                if isinstance(part, FormField):
                    fields.setdefault(part.name, []).append(part.value)
                    continue
                if part.name != FILE_FIELD or received is not None:
                    raise Problem(422, "unexpected-file", f"send exactly one file, in the `{FILE_FIELD}` part")
                received = await _spool(stack, part.filename, part.chunks, max_bytes)
        if received is None:
            raise Problem(422, "no-file", f"send the dataset as a `{FILE_FIELD}` part with a filename")
        yield DatasetForm(fields, received)


async def _spool(stack: AsyncExitStack, filename: str, chunks: AsyncIterator[bytes], max_bytes: int) -> ReceivedFile:
    hashed = Hashed(chunks)
    try:
        file = await stack.enter_async_context(spooled(aiter(hashed), max_bytes))
    except DatasetError as error:
        raise problem_of(error) from None
    return ReceivedFile(filename, file, hashed.sha256, hashed.size)


Respond = Callable[[asyncpg.Connection, DatasetVersion], Awaitable[Response]]


async def create_version(
    gateway: Gateway,
    caller: Caller,
    idempotency: Idempotency,
    upload: ReceivedFile,
    *,
    name: str,
    kind: DatasetSchema,
    fmt: DatasetFormat,
    request: dict[str, Any],
    respond: Respond,
) -> Response:
    """Validate every row of the upload (a 422 with the row-level report writes nothing), then, once per
    Idempotency-Key, append the rows to dataset `name` as a new version, announce it, and answer
    `respond(conn, version)` from the same transaction. `request` and the file's digest make up the fingerprint."""
    rows = await in_worker(validate_file, upload.file, fmt, kind)

    async def commit(conn: asyncpg.Connection) -> Response:
        # The Delta commit lands first; a failure before this transaction commits leaves an unannounced version,
        # which the reconciler announces (dataset_announcer.py). The transaction holds the Idempotency-Key's claim
        # meanwhile, so a concurrent retry waits for this outcome rather than writing a second version.
        version = await in_worker(write_version, gateway.settings, name, kind, rows, created_by=caller.name)
        await announce(conn, gateway.runtime.bus, version, caller.name)
        return await respond(conn, version)

    fingerprint = {**request, "format": fmt.value, "sha256": upload.sha256, "bytes": upload.size}
    return (await idempotency.run(fingerprint, commit)).response
