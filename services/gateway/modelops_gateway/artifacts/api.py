"""Artifact routes: import (a multipart upload streamed into the object store, then ArtifactSubmitted through the
outbox), the registry's reads behind role checks, and promotions forwarded with the caller as actor. The reads relay
the registry's answers as they are; their documented schemas are the registry's own read models (modelops_contracts).

Produces: artifacts.submissions.v1 (ArtifactSubmitted)."""

from __future__ import annotations

import uuid
from contextlib import aclosing
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import quote

import asyncpg
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse
from modelops_contracts import (
    ArtifactFile,
    ArtifactKind,
    ArtifactPage,
    ArtifactPromoted,
    ArtifactSubmitted,
    ArtifactView,
    FileDigest,
    LineageGraph,
    PromotionRecord,
    SigningKey,
    Stage,
    StageAt,
)
from modelops_contracts.artifacts import TEXT_PATTERN
from modelops_shared.bus import enqueue
from modelops_shared.problems import Problem
from modelops_shared.storage import InvalidKey, ObjectStore
from modelops_shared.storage.base import check_key
from pydantic import AwareDatetime, BeforeValidator

from ..deps import GatewayDep
from ..web.auth import Approver, Developer, Role, require
from ..web.forms import form_model
from ..web.idempotency import Idempotent
from ..web.multipart import form_parts
from ..web.openapi import problems
from ..web.relay import forwarded, streamed
from .checks import TOKENIZER_CONFIG, check_base_model, check_embedding_model, has_chat_template
from .schemas import IMPORT_BODY, ArtifactAccepted, ArtifactImport, PromotionRequest
from .uploads import receive_upload

JSON_BODY_LIMIT = 64 * 1024
MAX_TOKENIZER_CONFIG_BYTES = 16 * 1024 * 1024

# Letters, digits, `.`, `_`, `-`, starting with a letter or digit: safe in an upstream URL as it is, and never `..`.
ArtifactId = Annotated[str, PathParam(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]
# Pydantic would also read a number as a Unix time; the document promises ISO 8601, so only that is read.
At = Annotated[AwareDatetime, BeforeValidator(datetime.fromisoformat), Query(description="ISO 8601 with a timezone")]

router = APIRouter(prefix="/v1", tags=["artifacts"], responses=problems(401, 403, 429))
# Reads need only a viewer; the registry answers them.
reads = APIRouter(
    prefix="/v1",
    tags=["artifacts"],
    dependencies=[Depends(require(Role.VIEWER))],
    responses=problems(401, 403, 404, 422, 429, 502, 503),
)


@router.post(
    "/artifacts",
    status_code=202,
    response_model=ArtifactAccepted,
    openapi_extra=IMPORT_BODY,
    responses=problems(400, 413, 415, 422, 503),
)
async def import_artifact(
    request: Request, caller: Developer, gateway: GatewayDep, idempotency: Idempotent
) -> Response:
    """Upload an artifact's files (developer). The registry then verifies, signs and registers it: poll
    `GET /v1/artifacts/{id}`. A base model must hold a config, weights and a tokenizer, an embedding model those and
    a sentence-transformers `modules.json` (422 `incomplete-base-model` names what is missing); whether a base model
    has a chat template is recorded in its metadata. Nothing is kept when anything fails."""
    artifact_id = f"art-{uuid.uuid4().hex}"
    prefix = f"artifacts/{artifact_id}"
    store = gateway.runtime.store
    body = form_parts(request.headers, request.stream(), gateway.settings.gateway_max_upload_bytes)
    async with aclosing(body) as parts:
        upload = await receive_upload(parts, store, prefix, max_files=gateway.settings.gateway_max_upload_files)
    try:
        form = form_model(ArtifactImport, upload.fields)
        files = sorted(upload.files, key=lambda file: file.path)
        metadata = await _metadata(store, prefix, form.kind, files)
        submission = ArtifactSubmitted(
            artifact_id=artifact_id,
            kind=form.kind,
            name=form.name,
            version=form.version,
            uri=store.url_of(prefix),
            files=files,
            parents=form.parents,
            created_by=caller.name,
            metadata=metadata,
        )

        async def submit(conn: asyncpg.Connection) -> Response:
            await enqueue(conn, gateway.runtime.bus, submission, correlation_id=artifact_id)
            accepted = ArtifactAccepted(id=artifact_id, status="submitted")
            return JSONResponse(accepted.model_dump(), 202, headers={"Location": f"/v1/artifacts/{artifact_id}"})

        # Same import = same fields and the same files by content, whatever the part order or multipart boundary.
        same_import = {**form.model_dump(mode="json"), "files": [file.model_dump() for file in files]}
        outcome = await idempotency.run(same_import, submit)
    except BaseException:
        await upload.discard()
        raise
    if outcome.replayed:
        await upload.discard()
    return outcome.response


@router.post(
    "/artifacts/{artifact_id}/promotions",
    status_code=201,
    response_model=ArtifactPromoted,
    max_body_size=JSON_BODY_LIMIT,
    responses=problems(404, 409, 413, 422, 502, 503),
)
async def promote(
    artifact_id: ArtifactId, body: PromotionRequest, caller: Approver, gateway: GatewayDep, idempotency: Idempotent
) -> Response:
    """Move an artifact to another stage (approver). The registry's policy decides; its refusals come back as
    they are. The registry records this key's name as the actor, from the gateway's signed token. With an
    Idempotency-Key, the registry is asked under a request id made from it: a retry after a lost answer gets the
    promotion made, and nothing moves twice."""

    async def forward(token: str) -> Response:
        path = f"/v1/artifacts/{artifact_id}/promotions"
        request = {**body.model_dump(mode="json"), "request_id": token}
        return await forwarded(
            gateway.registry, "POST", path, json=request, acting_for=(caller.name, caller.role.value)
        )

    async def answer(_: asyncpg.Connection, response: Response) -> Response:
        return response

    return (await idempotency.run_prepared(body.model_dump(mode="json"), forward, answer)).response


async def _metadata(store: ObjectStore, prefix: str, kind: ArtifactKind, files: list[FileDigest]) -> dict[str, Any]:
    """A model's pieces checked (IncompleteBaseModel names what is missing); whether a base model has a chat
    template."""
    paths = {file.path for file in files}
    if kind == ArtifactKind.EMBEDDING_MODEL:
        check_embedding_model(paths)
        return {}
    if kind != ArtifactKind.BASE_MODEL:
        return {}
    check_base_model(paths)
    config = next((f for f in files if f.path == TOKENIZER_CONFIG and f.size <= MAX_TOKENIZER_CONFIG_BYTES), None)
    tokenizer_config = await store.get(f"{prefix}/{TOKENIZER_CONFIG}") if config else None
    return {"chat_template": has_chat_template(paths, tokenizer_config)}


def _params(**values: Any) -> dict[str, str]:
    return {
        name: value.isoformat() if isinstance(value, datetime) else str(value)
        for name, value in values.items()
        if value is not None
    }


@reads.get("/artifacts", response_model=ArtifactPage)
async def list_artifacts(
    gateway: GatewayDep,
    kind: ArtifactKind | None = None,
    stage: Stage | None = None,
    name: Annotated[str | None, Query(max_length=200, pattern=TEXT_PATTERN)] = None,
    cursor: Annotated[str | None, Query(max_length=200, pattern=TEXT_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Response:
    """Registered artifacts, newest first, a page at a time (`next_cursor`)."""
    params = _params(kind=kind, stage=stage, name=name, cursor=cursor, limit=limit)
    return await forwarded(gateway.registry, "GET", "/v1/artifacts", params=params)


@reads.get("/artifacts/{artifact_id}", response_model=ArtifactView)
async def get_artifact(gateway: GatewayDep, artifact_id: ArtifactId) -> Response:
    """One artifact; a 404 problem says when it is still pending or was rejected (`submission_status`)."""
    return await forwarded(gateway.registry, "GET", f"/v1/artifacts/{artifact_id}")


@reads.get("/artifacts/{artifact_id}/files", response_model=list[ArtifactFile])
async def list_files(gateway: GatewayDep, artifact_id: ArtifactId) -> Response:
    """Every file with its sha256 and size."""
    return await forwarded(gateway.registry, "GET", f"/v1/artifacts/{artifact_id}/files")


@reads.get(
    "/artifacts/{artifact_id}/files/{path:path}",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}, "description": "The file's bytes"}},
)
async def download_file(gateway: GatewayDep, artifact_id: ArtifactId, path: str) -> Response:
    """One file, streamed through (`Digest: sha-256=…`)."""
    try:
        check_key(path)
    except InvalidKey as error:
        raise Problem(422, "invalid-file-path", str(error)) from None
    return await streamed(
        gateway.registry, "GET", f"/v1/artifacts/{artifact_id}/files/{quote(path)}", only_success=True
    )


@reads.get("/artifacts/{artifact_id}/bundle", response_model=dict[str, Any])
async def get_bundle(gateway: GatewayDep, artifact_id: ArtifactId) -> Response:
    """The signed Sigstore bundle (DSSE envelope over the in-toto statement)."""
    return await forwarded(gateway.registry, "GET", f"/v1/artifacts/{artifact_id}/bundle")


@reads.get("/artifacts/{artifact_id}/lineage", response_model=LineageGraph | list[dict[str, Any]])
async def get_lineage(
    gateway: GatewayDep, artifact_id: ArtifactId, format: Literal["graph", "openlineage"] = "graph"
) -> Response:
    """Where the artifact came from and what came of it, as a graph or as OpenLineage events."""
    return await forwarded(
        gateway.registry, "GET", f"/v1/artifacts/{artifact_id}/lineage", params=_params(format=format)
    )


@reads.get("/artifacts/{artifact_id}/promotions", response_model=list[PromotionRecord])
async def list_promotions(gateway: GatewayDep, artifact_id: ArtifactId) -> Response:
    """Every stage move, signed, with actor, reason and time."""
    return await forwarded(gateway.registry, "GET", f"/v1/artifacts/{artifact_id}/promotions")


@reads.get("/artifacts/{artifact_id}/stage", response_model=StageAt)
async def get_stage_at(gateway: GatewayDep, artifact_id: ArtifactId, at: At) -> Response:
    """The artifact's stage at time `at`."""
    return await forwarded(gateway.registry, "GET", f"/v1/artifacts/{artifact_id}/stage", params=_params(at=at))


@reads.get("/stages/{stage}/artifacts", response_model=list[ArtifactView])
async def get_artifacts_in_stage_at(gateway: GatewayDep, stage: Stage, at: At) -> Response:
    """Every artifact that was in `stage` at time `at`, e.g. what was in prod at T."""
    return await forwarded(gateway.registry, "GET", f"/v1/stages/{stage.value}/artifacts", params=_params(at=at))


@reads.get("/keys", response_model=list[SigningKey])
async def list_signing_keys(gateway: GatewayDep) -> Response:
    """The registry's public signing keys (PEM), old ones included, to verify bundles with."""
    return await forwarded(gateway.registry, "GET", "/v1/keys")
