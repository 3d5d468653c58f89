"""Model import routes: a GGUF uploaded (streamed into the object store, its magic bytes checked), its ImportGguf
command staged in the outbox, and the import's state as the trainer reports it. The ids come from the file's
sha256: the same file always gives the same import and the same artifacts, and a second upload of it is dropped.

Produces: models.commands.v1 (ImportGguf)."""

from __future__ import annotations

import uuid
from contextlib import aclosing
from typing import Annotated

import asyncpg
from fastapi import APIRouter, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse
from modelops_contracts import ImportGguf
from modelops_shared.storage import ObjectStore

from ..artifacts.uploads import receive_upload
from ..deps import GatewayDep
from ..web.auth import Developer, Viewer
from ..web.forms import form_model
from ..web.multipart import form_parts
from ..web.openapi import problems
from . import store
from .domain import ImportNotFound, NotAGguf
from .schemas import GGUF_BODY, GgufImport, ModelImportView

GGUF_MAGIC = b"GGUF"
FILE_FIELD = "file"

ImportId = Annotated[str, PathParam(pattern=r"^imp-[0-9a-f]{24}$")]

router = APIRouter(prefix="/v1/models", tags=["models"], responses=problems(401, 403, 429))


@router.post(
    "/gguf",
    status_code=202,
    response_model=ModelImportView,
    openapi_extra=GGUF_BODY,
    responses={
        200: {"model": ModelImportView, "description": "This file was imported before"},
        **problems(400, 413, 415, 422, 503),
    },
)
async def import_gguf(request: Request, caller: Developer, gateway: GatewayDep) -> Response:
    """Import a GGUF model file (developer): the trainer registers it as a `quantized_model` and its conversion to
    a Hugging Face directory as a `base_model` converted from it, both signed, with the file's sha256, quantization,
    licence and `source` in their signed metadata. Follow `GET /v1/models/imports/{id}`; a file that is not a
    GGUF of a served architecture fails it and registers nothing."""
    objects = gateway.runtime.store
    body = form_parts(request.headers, request.stream(), gateway.settings.gateway_max_upload_bytes)
    async with aclosing(body) as parts:
        upload = await receive_upload(parts, objects, f"imports/{uuid.uuid4().hex}", max_files=1, field=FILE_FIELD)
    try:
        form = form_model(GgufImport, upload.fields)
        (file,) = upload.files
        if not await _starts_with(objects, f"{upload.prefix}/{file.path}", GGUF_MAGIC):
            raise NotAGguf(file.path)
        digest = file.sha256[:24]
        command = ImportGguf(
            import_id=f"imp-{digest}",
            requested_by=caller.name,
            uri=objects.url_of(upload.prefix),
            file=file,
            name=form.name,
            source=form.source,
            gguf_artifact_id=f"gguf-{digest}",
            base_model_artifact_id=f"base-{digest}",
        )
        async with gateway.runtime.pool.acquire() as conn, conn.transaction():
            staged = await store.stage_import(conn, gateway.runtime.bus, command)
            row = await store.get_import(conn, command.import_id)
    except BaseException:
        await upload.discard()
        raise
    if not staged:
        await upload.discard()
    view = ModelImportView.model_validate(dict(row))  # type: ignore[arg-type]
    headers = {"Location": f"/v1/models/imports/{view.id}"}
    return JSONResponse(view.model_dump(mode="json"), 202 if staged else 200, headers=headers)


@router.get("/imports/{import_id}", response_model=ModelImportView, responses=problems(404, 422))
async def get_import(_: Viewer, gateway: GatewayDep, import_id: ImportId) -> ModelImportView:
    """One import: pending until the trainer has submitted both artifacts (completed) or refused the file (failed,
    with the reason)."""
    row: asyncpg.Record | None = await store.get_import(gateway.runtime.pool, import_id)
    if row is None:
        raise ImportNotFound(import_id)
    return ModelImportView.model_validate(dict(row))


async def _starts_with(objects: ObjectStore, key: str, magic: bytes) -> bool:
    head = b""
    async for chunk in objects.stream(key, chunk_size=len(magic)):
        head += chunk
        if len(head) >= len(magic):
            break
    return head[: len(magic)] == magic
