"""RAG routes, relayed to the rag service with the caller as the acting user in the gateway's service token (the rag
service checks owners itself): collections, document uploads (streamed into the object store here, then recorded
there once they parse), index jobs, search and answers (streamed with `stream: true`). Creating routes are
idempotent: the Idempotency-Key becomes the rag service's `request_id`.

Produces nothing itself: the rag service stages its index commands."""

from __future__ import annotations

import json
import re
import uuid
from contextlib import aclosing
from pathlib import PurePosixPath
from typing import Annotated

import asyncpg
from fastapi import APIRouter, Request, Response
from fastapi import Path as PathParam
from modelops_contracts.rag import (
    COLLECTION_NAME_PATTERN,
    DOCUMENT_NAME_PATTERN,
    AnswerRequest,
    AnswerView,
    CollectionRequest,
    CollectionView,
    DocumentUpload,
    DocumentView,
    IndexJobView,
    SearchRequest,
    SearchResults,
)
from modelops_shared.problems import Problem

from ..artifacts.uploads import receive_upload
from ..deps import GatewayDep
from ..web.auth import Caller, Developer, Viewer
from ..web.idempotency import Idempotent
from ..web.multipart import form_parts
from ..web.openapi import problems
from ..web.relay import forwarded, streamed

JSON_BODY_LIMIT = 64 * 1024
CONTENT_TYPES = {
    ".txt": "text/plain",
    ".text": "text/plain",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".html": "text/html",
    ".htm": "text/html",
    ".pdf": "application/pdf",
}
UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "A .txt, .md, .html or .pdf file; its filename names the document",
                        }
                    },
                }
            }
        },
    }
}

CollectionName = Annotated[str, PathParam(pattern=COLLECTION_NAME_PATTERN)]
JobId = Annotated[str, PathParam(pattern=r"^ixjob-[0-9a-f]{25}$")]

router = APIRouter(prefix="/v1/rag", tags=["rag"], responses=problems(401, 403, 429, 502, 503))


def _user(caller: Caller) -> tuple[str, str]:
    return caller.name, caller.role.value


@router.post(
    "/collections",
    status_code=201,
    response_model=CollectionView,
    max_body_size=JSON_BODY_LIMIT,
    responses=problems(409, 413, 422),
)
async def create_collection(
    body: CollectionRequest, caller: Developer, gateway: GatewayDep, idempotency: Idempotent
) -> Response:
    """A collection owned by the caller (developer), embedded by one embedding_model artifact (by default the
    imported all-MiniLM-L6-v2)."""

    async def forward(token: str) -> Response:
        request = body.model_dump(mode="json")
        params = {"request_id": token}
        return await forwarded(
            gateway.rag, "POST", "/v1/collections", json=request, params=params, acting_for=_user(caller)
        )

    return (await idempotency.run_prepared(body.model_dump(mode="json"), forward, _answer)).response


@router.get("/collections", response_model=list[CollectionView])
async def list_collections(caller: Viewer, gateway: GatewayDep) -> Response:
    return await forwarded(gateway.rag, "GET", "/v1/collections", acting_for=_user(caller))


@router.get("/collections/{name}", response_model=CollectionView, responses=problems(404, 422))
async def get_collection(caller: Viewer, gateway: GatewayDep, name: CollectionName) -> Response:
    return await forwarded(gateway.rag, "GET", f"/v1/collections/{name}", acting_for=_user(caller))


@router.delete("/collections/{name}", status_code=204, responses=problems(404, 409, 422))
async def delete_collection(caller: Developer, gateway: GatewayDep, name: CollectionName) -> Response:
    """Remove a collection (its owner or an admin); its signed indexes stay in the registry."""
    return await forwarded(gateway.rag, "DELETE", f"/v1/collections/{name}", acting_for=_user(caller))


@router.post(
    "/collections/{name}/documents",
    status_code=201,
    response_model=DocumentView,
    openapi_extra=UPLOAD_BODY,
    responses=problems(400, 404, 413, 415, 422),
)
async def upload_document(
    request: Request, caller: Developer, gateway: GatewayDep, idempotency: Idempotent, name: CollectionName
) -> Response:
    """Upload one document (the collection's owner or an admin) as multipart `file`: text, Markdown, HTML or PDF
    by its extension. Uploading a name again makes a new version; the same bytes again make none (`unchanged`).
    A file that does not parse as its type is refused whole (422 `unreadable-document`) and nothing is kept."""
    store = gateway.runtime.store
    prefix = f"rag-uploads/{uuid.uuid4().hex}"
    body = form_parts(request.headers, request.stream(), gateway.settings.gateway_max_document_bytes)
    async with aclosing(body) as parts:
        upload = await receive_upload(parts, store, prefix, max_files=1, field="file")
    discard = True  # unless the rag service may have recorded it: an error after the request was sent keeps it
    try:
        (file,) = upload.files
        document = DocumentUpload(
            name=file.path,
            uri=store.url_of(f"{prefix}/{file.path}"),
            sha256=file.sha256,
            size=file.size,
            content_type=_content_type(file.path),
        )

        async def forward(token: str) -> Response:
            nonlocal discard
            discard = False
            path = f"/v1/collections/{name}/documents"
            params = {"request_id": token}
            answer = await forwarded(
                gateway.rag, "POST", path, json=document.model_dump(), params=params, acting_for=_user(caller)
            )
            discard = answer.status_code != 201 or json.loads(bytes(answer.body))["unchanged"]
            return answer

        same_upload = {"collection": name, "name": file.path, "sha256": file.sha256}
        outcome = await idempotency.run_prepared(same_upload, forward, _answer)
        discard = discard or outcome.replayed
        return outcome.response
    finally:
        if discard:
            await upload.discard()


@router.get("/collections/{name}/documents", response_model=list[DocumentView], responses=problems(404, 422))
async def list_documents(caller: Viewer, gateway: GatewayDep, name: CollectionName) -> Response:
    """Every version of every document."""
    return await forwarded(gateway.rag, "GET", f"/v1/collections/{name}/documents", acting_for=_user(caller))


@router.post(
    "/collections/{name}/index",
    status_code=202,
    response_model=IndexJobView,
    responses=problems(404, 409, 422),
)
async def index_collection(
    caller: Developer, gateway: GatewayDep, idempotency: Idempotent, name: CollectionName
) -> Response:
    """Index the newest version of every document (the owner or an admin), by a Kafka job: parse, chunk, embed
    only what changed, write to LanceDB, sign the index as a rag_index. Follow `GET /v1/rag/index-jobs/{id}`."""

    async def forward(token: str) -> Response:
        path = f"/v1/collections/{name}/index"
        return await forwarded(gateway.rag, "POST", path, params={"request_id": token}, acting_for=_user(caller))

    return (await idempotency.run_prepared({"collection": name}, forward, _answer)).response


@router.get("/index-jobs/{job_id}", response_model=IndexJobView, responses=problems(404, 422))
async def get_index_job(caller: Viewer, gateway: GatewayDep, job_id: JobId) -> Response:
    return await forwarded(gateway.rag, "GET", f"/v1/index-jobs/{job_id}", acting_for=_user(caller))


@router.post(
    "/index-jobs/{job_id}/cancel", status_code=202, response_model=IndexJobView, responses=problems(404, 409, 422)
)
async def cancel_index_job(caller: Developer, gateway: GatewayDep, job_id: JobId) -> Response:
    """Stop an index job before its next document (who started it, or an admin)."""
    return await forwarded(gateway.rag, "POST", f"/v1/index-jobs/{job_id}/cancel", acting_for=_user(caller))


@router.post(
    "/collections/{name}/search",
    response_model=SearchResults,
    max_body_size=JSON_BODY_LIMIT,
    responses=problems(404, 409, 413, 422),
)
async def search(body: SearchRequest, caller: Viewer, gateway: GatewayDep, name: CollectionName) -> Response:
    """The k best chunks: hybrid by default (vector and full-text results fused by reciprocal rank, k = 60),
    with metadata filters; each hit names its document, chunk, heading and page."""
    path = f"/v1/collections/{name}/search"
    request = body.model_dump(mode="json", exclude_none=True)
    return await forwarded(gateway.rag, "POST", path, json=request, relay_problems=True, acting_for=_user(caller))


@router.post(
    "/collections/{name}/answer",
    response_model=AnswerView,
    max_body_size=JSON_BODY_LIMIT,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "With `stream`: citations, deltas, done"},
        **problems(404, 409, 413, 422),
    },
)
async def answer(body: AnswerRequest, caller: Viewer, gateway: GatewayDep, name: CollectionName) -> Response:
    """Answer from the collection with a deployment (its served model name): the passages retrieved, the answer
    grounded on them with `[n]` citations, or "I don't know" when nothing relevant is found."""
    path = f"/v1/collections/{name}/answer"
    request = body.model_dump(mode="json", exclude_none=True)
    return await streamed(gateway.rag, "POST", path, json=request, relay_problems=True, acting_for=_user(caller))


def _content_type(filename: str) -> str:
    """The document's type, by its extension: the rag service parses it as that, and refuses what does not parse."""
    content_type = CONTENT_TYPES.get(PurePosixPath(filename).suffix.lower())
    if content_type is None or re.fullmatch(DOCUMENT_NAME_PATTERN, filename) is None:
        known = ", ".join(sorted(CONTENT_TYPES))
        raise Problem(415, "unsupported-document", f"{filename!r}: a document is a file named like x.md ({known})")
    return content_type


async def _answer(_: asyncpg.Connection, response: Response) -> Response:
    return response
