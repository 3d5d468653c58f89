"""The one path from an uploaded dataset file to an announced version, for `POST /v1/datasets` and `POST /v1/files`:
the file part spooled and hashed as it streams (`received_form`), every row validated (`validated_rows`), then a
new Delta version committed once per upload (`write_upload`) and announced (why in that order: the gateway README,
"Datasets: one Delta commit, one announcement")."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import AsyncExitStack, aclosing, asynccontextmanager
from dataclasses import dataclass
from typing import IO, Any

import asyncpg
import pyarrow as pa
from modelops_contracts import DatasetSchema

from ..access.domain import Role, check_owner
from ..settings import GatewaySettings
from ..web.multipart import FormField, FormFile, Hashed, UploadRejected
from .domain import DatasetNotFound
from .lake import DatasetVersion, first_uploader, write_version
from .store import claim_owner, owner
from .validation import DatasetFormat, spooled, validate_file

FILE_FIELD = "file"


@dataclass(frozen=True)
class ReceivedFile:
    """The uploaded file, spooled to a temporary file (gone when its block exits), with its digest."""

    filename: str
    file: IO[bytes]
    sha256: str
    size: int

    def fingerprint(self, fmt: DatasetFormat, fields: dict[str, Any]) -> dict[str, Any]:
        """What makes two uploads the same upload, for Idempotency-Key: the fields and the file's content."""
        return {**fields, "format": fmt.value, "sha256": self.sha256, "bytes": self.size}


@dataclass(frozen=True)
class DatasetForm:
    fields: dict[str, list[str]]
    file: ReceivedFile


@asynccontextmanager
async def received_form(
    parts: AsyncGenerator[FormField | FormFile, None], *, max_bytes: int
) -> AsyncIterator[DatasetForm]:
    """The multipart body's text fields and its one `file` part, read to the end (parts in any order)."""
    fields: dict[str, list[str]] = {}
    received: ReceivedFile | None = None
    async with AsyncExitStack() as stack:
        async with aclosing(parts):
            async for part in parts:
                if isinstance(part, FormField):
                    fields.setdefault(part.name, []).append(part.value)
                    continue
                if part.name != FILE_FIELD or received is not None:
                    raise UploadRejected(422, "unexpected-file", f"send exactly one file, in the `{FILE_FIELD}` part")
                received = await _spool(stack, part.filename, part.chunks, max_bytes)
        if received is None:
            raise UploadRejected(422, "no-file", f"send the dataset as a `{FILE_FIELD}` part with a filename")
        yield DatasetForm(fields, received)


async def _spool(stack: AsyncExitStack, filename: str, chunks: AsyncIterator[bytes], max_bytes: int) -> ReceivedFile:
    hashed = Hashed(chunks)
    file = await stack.enter_async_context(spooled(aiter(hashed), max_bytes))
    return ReceivedFile(filename, file, hashed.sha256, hashed.size)


async def validated_rows(upload: ReceivedFile, fmt: DatasetFormat, kind: DatasetSchema) -> pa.Table:
    """Every row checked against `kind`; one bad row raises DatasetInvalid with the row-level report."""
    return await asyncio.to_thread(validate_file, upload.file, fmt, kind)


async def write_upload(
    pool: asyncpg.Pool,
    settings: GatewaySettings,
    *,
    name: str,
    kind: DatasetSchema,
    rows: pa.Table,
    created_by: str,
    role: Role,
    upload: str,
) -> DatasetVersion:
    """Append `rows` to dataset `name` as a new version, once per `upload` token (a retry finds the version it
    wrote): a first upload makes `created_by` the dataset's owner, and a later one must come from its owner or an
    admin (NotTheOwner). No transaction stays open during the write; the caller announces the version in its own
    (`announcer.announce`), and the reconciler announces a version whose announcement was lost."""
    check_owner(created_by, role, await _owner(pool, settings, name, created_by), f"dataset {name}")
    return await asyncio.to_thread(write_version, settings, name, kind, rows, upload=upload, created_by=created_by)


async def _owner(pool: asyncpg.Pool, settings: GatewaySettings, name: str, uploader: str) -> str | None:
    """The dataset's owner: the one recorded; else, for a dataset from before owners were kept, whoever uploaded its
    version 0 (None when its commit does not say: then it is an admin's); else, for a new dataset, `uploader`."""
    recorded = await owner(pool, name)
    if recorded is not None:
        return recorded
    try:
        first = await asyncio.to_thread(first_uploader, settings, name)
    except DatasetNotFound:
        first = uploader
    return None if first is None else await claim_owner(pool, name, first)
