"""Model imports, the trainer's handler of ImportGguf: the uploaded GGUF fetched and re-hashed, its header checked,
converted to a Hugging Face directory and that uploaded — all before anything is submitted, so a bad file registers
nothing. Then the GGUF is submitted as a quantized_model in a transaction of its own; once the registry has
registered it, the directory is submitted as a base_model converted from it, and ModelImported announced.

The base model waits for its parent because the registry refuses a child whose parent it has not registered, and
the two submissions travel on different partitions (they are keyed by artifact id).

Consumes: models.commands.v1 (group trainer-imports). Produces: artifacts.submissions.v1 and models.events.v1
(ModelImported, ModelImportFailed), through the outbox."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import tempfile
from pathlib import Path
from typing import Any

import asyncpg
from modelops_contracts import (
    ArtifactKind,
    ArtifactSubmitted,
    FileDigest,
    ImportGguf,
    LineageRelation,
    Message,
    ModelImported,
    ModelImportFailed,
    ParentRef,
)
from modelops_shared.artifact_upload import upload_directory
from modelops_shared.artifacts import ArtifactClient, ArtifactUnavailable
from modelops_shared.bus import Bus, MessageContext, enqueue
from modelops_shared.storage import ObjectStore

from . import gguf_import

log = logging.getLogger(__name__)

REGISTERED_WAIT_S = 300.0


class Importer:
    """The ImportGguf handler; its conversion runs on a thread, beside (not inside) the training worker thread."""

    def __init__(
        self, pool: asyncpg.Pool, bus: Bus, store: ObjectStore, artifacts: ArtifactClient, work_dir: Path
    ) -> None:
        self.pool = pool
        self.bus = bus
        self.store = store
        self.artifacts = artifacts
        self.work_dir = work_dir

    async def handle(self, body: Message, ctx: MessageContext) -> None:
        if not isinstance(body, ImportGguf):
            return
        self.work_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="import-", dir=self.work_dir) as scratch:
            try:
                info, base_files = await self._prepare(body, Path(scratch))
            except gguf_import.NotAGguf as error:
                log.info("import %s refused: %s", body.import_id, error)
                await ctx.emit(ModelImportFailed(import_id=body.import_id, reason=str(error)))
                return
        name = body.name or _slug(info.name) or "gguf-model"
        provenance: dict[str, Any] = {
            "source": body.source or f"upload:{body.file.path}",
            "gguf_sha256": info.sha256,
            "quantization": info.quantization,
            "license": info.license,
            "architecture": info.architecture,
        }
        gguf = ArtifactSubmitted(
            artifact_id=body.gguf_artifact_id,
            kind=ArtifactKind.QUANTIZED_MODEL,
            name=name,
            uri=body.uri,
            files=[body.file],
            created_by=body.requested_by,
            metadata={"format": info.quantization, **provenance},
        )
        async with self.pool.acquire() as conn, conn.transaction():
            await enqueue(conn, self.bus, gguf, causation=ctx.envelope)
        try:
            await self.artifacts.wait_registered(body.gguf_artifact_id, ArtifactKind.QUANTIZED_MODEL, REGISTERED_WAIT_S)
        except ArtifactUnavailable as refused:  # the registry rejected the GGUF: its conversion is not submitted
            await ctx.emit(ModelImportFailed(import_id=body.import_id, reason=str(refused)))
            return
        await ctx.emit(
            ArtifactSubmitted(
                artifact_id=body.base_model_artifact_id,
                kind=ArtifactKind.BASE_MODEL,
                name=name,
                uri=self.store.url_of(_base_prefix(body)),
                files=base_files,
                parents=[ParentRef(artifact_id=body.gguf_artifact_id, relation=LineageRelation.CONVERTED_FROM)],
                created_by=body.requested_by,
                metadata={
                    **provenance,
                    "converted_by": "transformers GGUF loader, de-quantized to fp32",
                    "chat_template": any(f.path == "chat_template.jinja" for f in base_files),
                },
            )
        )
        await ctx.emit(
            ModelImported(
                import_id=body.import_id,
                name=name,
                gguf_artifact_id=body.gguf_artifact_id,
                base_model_artifact_id=body.base_model_artifact_id,
                architecture=info.architecture,
                quantization=info.quantization,
            )
        )

    async def _prepare(self, body: ImportGguf, scratch: Path) -> tuple[gguf_import.GgufInfo, list[FileDigest]]:
        """Fetch and re-hash the upload, convert it, upload the directory; NotAGguf for a file it cannot import."""
        path = scratch / "model.gguf"
        key = f"{self.store.key_of(body.uri)}/{body.file.path}"
        digest = hashlib.sha256()
        with path.open("wb") as file:
            async for chunk in self.store.stream(key):
                digest.update(chunk)
                await asyncio.to_thread(file.write, chunk)
        if digest.hexdigest() != body.file.sha256:
            raise gguf_import.NotAGguf(f"{body.file.path} changed since it was uploaded (sha256 differs)")
        try:
            info = await asyncio.to_thread(gguf_import.convert, path, scratch / "converted", body.file.sha256)
        except gguf_import.NotAGguf:
            raise
        except Exception as error:  # a GGUF transformers cannot read: the file's fault, not worth a retry
            log.exception("import %s: conversion failed", body.import_id)
            raise gguf_import.NotAGguf(f"{body.file.path} could not be converted: {error}") from error
        files = await upload_directory(self.store, scratch / "converted", _base_prefix(body))
        return info, files


def _base_prefix(body: ImportGguf) -> str:
    return f"artifacts/{body.base_model_artifact_id}"


def _slug(name: str | None) -> str:
    return re.sub(r"[^a-z0-9]+", "-", (name or "").lower()).strip("-")[:100]
