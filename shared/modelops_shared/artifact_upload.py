"""Local directories to the object store: file digests as the registry will re-check them, and the upload itself."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

from modelops_contracts import FileDigest

from .storage import ObjectStore


def digest_directory(directory: Path) -> list[FileDigest]:
    """Every file under `directory` with its sha256 and size, paths relative and '/'-separated, sorted."""
    digests = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        with path.open("rb") as file:
            sha256 = hashlib.file_digest(file, "sha256").hexdigest()
        digests.append(FileDigest(path=path.relative_to(directory).as_posix(), sha256=sha256, size=path.stat().st_size))
    return digests


async def upload_directory(store: ObjectStore, directory: Path, prefix: str) -> list[FileDigest]:
    """Put every file of `directory` under `prefix/`; returns their digests."""
    digests = await asyncio.to_thread(digest_directory, directory)
    for digest in digests:
        await store.put(f"{prefix}/{digest.path}", directory / digest.path)
    return digests
