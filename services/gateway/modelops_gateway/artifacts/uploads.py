"""Artifact uploads: each `files` part of a multipart body streamed into the object store under the artifact's
prefix, hashed (sha256, size) on its way through, its filename checked as a relative path; text fields kept (small)
for the route to validate. All or nothing: on any failure whatever was stored is removed. Files are never spooled
to local disk."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from modelops_contracts import FileDigest
from modelops_shared.storage import InvalidKey, ObjectStore
from modelops_shared.storage.base import check_key

from ..web.multipart import FormField, FormFile, Hashed, UploadRejected

FILES_FIELD = "files"
MAX_SEGMENT_BYTES = 255  # what common filesystems allow per path segment
MAX_PATH_BYTES = 1024


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
    parts: AsyncIterator[FormField | FormFile],
    store: ObjectStore,
    prefix: str,
    *,
    max_files: int,
    field: str = FILES_FIELD,
) -> Upload:
    """Stream the body's file parts (named `field`) to `<prefix>/<filename>`, where each filename is a relative
    path; all-or-nothing: a failure at any point removes what was stored and raises."""
    upload = Upload(store, prefix)
    try:
        async for part in parts:
            if isinstance(part, FormField):
                upload.fields.setdefault(part.name, []).append(part.value)
                continue
            if part.name != field:
                raise UploadRejected(422, "unexpected-file", f"files go in `{field}` parts, not `{part.name}`")
            if len(upload.files) >= max_files:
                raise UploadRejected(422, "too-many-files", f"an upload holds at most {max_files} files")
            path = _checked_path(part.filename, upload.files)
            upload.files.append(await _store_file(store, f"{prefix}/{path}", path, part.chunks))
    except BaseException:
        await upload.discard()
        raise
    if not upload.files:
        raise UploadRejected(422, "no-files", f"send at least one `{field}` part whose filename is its relative path")
    return upload


def _checked_path(path: str, stored: list[FileDigest]) -> str:
    """`path` if it is a relative path (`tokenizer/tokenizer.json`) that no other file of the upload clashes with."""
    try:
        check_key(path)
    except InvalidKey as error:
        raise UploadRejected(
            422, "invalid-file-path", f"{error}; filenames are relative paths such as a/b.json"
        ) from None
    if len(path.encode()) > MAX_PATH_BYTES or any(len(s.encode()) > MAX_SEGMENT_BYTES for s in path.split("/")):
        raise UploadRejected(422, "invalid-file-path", f"{path!r} is too long")
    for other in stored:
        if other.path == path or other.path.startswith(f"{path}/") or path.startswith(f"{other.path}/"):
            # A file cannot also be a folder of another file, and a path appears once.
            raise UploadRejected(422, "conflicting-file-paths", f"{path!r} clashes with {other.path!r}")
    return path


async def _store_file(store: ObjectStore, key: str, path: str, chunks: AsyncIterator[bytes]) -> FileDigest:
    hashed = Hashed(chunks)
    await store.put(key, aiter(hashed))
    return FileDigest(path=path, sha256=hashed.sha256, size=hashed.size)
