"""Checkpoints of a job in the object store, under checkpoints/<job id>/step-<n>/, with `latest.json` naming the
newest complete one: written after all its files, so a reader never picks a half-uploaded checkpoint."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from modelops_shared.artifact_upload import upload_directory
from modelops_shared.storage import ObjectNotFound, ObjectStore

PREFIX = "checkpoints"
LATEST = "latest.json"


class Checkpoints:
    def __init__(self, store: ObjectStore, job_id: str, keep: int) -> None:
        self.store = store
        self.prefix = f"{PREFIX}/{job_id}"
        self.keep = keep

    async def save(self, step: int, directory: Path) -> str:
        """Upload the checkpoint, make it the latest, drop the oldest beyond `keep`; returns its URL."""
        folder = f"{self.prefix}/step-{step:09d}"
        digests = await upload_directory(self.store, directory, folder)
        pointer = {"step": step, "folder": folder, "files": [d.path for d in digests]}
        await self.store.put(f"{self.prefix}/{LATEST}", json.dumps(pointer).encode())
        steps = sorted({info.key.split("/")[2] for info in await self.store.list(f"{self.prefix}/step-")})
        for old in steps[: -self.keep]:
            for info in await self.store.list(f"{self.prefix}/{old}/"):
                await self.store.delete(info.key)
        return self.store.url_of(folder)

    async def restore(self, into: Path) -> Path | None:
        """Download the latest checkpoint into `into/checkpoint-<step>` (the layout the Trainer resumes from)."""
        try:
            pointer = json.loads(await self.store.get(f"{self.prefix}/{LATEST}"))
        except ObjectNotFound:
            return None
        target = into / f"checkpoint-{pointer['step']}"
        for path in pointer["files"]:
            destination = target / path
            await asyncio.to_thread(destination.parent.mkdir, parents=True, exist_ok=True)
            await asyncio.to_thread(destination.write_bytes, await self.store.get(f"{pointer['folder']}/{path}"))
        return target
