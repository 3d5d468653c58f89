"""API key routes (admin): create (the secret is in that response only), list (never a secret), revoke; and
any key's own identity (`/me`)."""

from __future__ import annotations

import json
from typing import Annotated

import asyncpg
from fastapi import APIRouter, Path, Response
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from ..deps import GatewayDep
from ..web.auth import Admin, Viewer
from ..web.idempotency import Idempotent
from ..web.openapi import problems
from .domain import KeyNotFound
from .schemas import ApiKeyRequest, ApiKeyView, CreatedApiKey, Identity

JSON_BODY_LIMIT = 16 * 1024

router = APIRouter(prefix="/v1/api-keys", tags=["api keys"], responses=problems(401, 403, 429))


@router.post(
    "", status_code=201, response_model=CreatedApiKey, max_body_size=JSON_BODY_LIMIT, responses=problems(409, 413, 422)
)
async def create_api_key(body: ApiKeyRequest, caller: Admin, gateway: GatewayDep, idempotency: Idempotent) -> Response:
    """A new key; keep its secret now, it cannot be shown again. A replay of this request with the same
    Idempotency-Key returns the key without its secret, which is stored nowhere."""

    async def create(conn: asyncpg.Connection) -> Response:
        key, secret = await gateway.keys.create(
            conn, name=body.name, role=body.role, rate_limit=body.rate_limit, created_by=caller.name
        )
        return JSONResponse(jsonable_encoder(CreatedApiKey(**ApiKeyView.of(key).model_dump(), key=secret)), 201)

    def without_secret(response: Response) -> Response:
        return JSONResponse({**json.loads(bytes(response.body)), "key": None}, response.status_code)

    return (await idempotency.run(body.model_dump(mode="json"), create, kept=without_secret)).response


@router.get("")
async def list_api_keys(_: Admin, gateway: GatewayDep) -> list[ApiKeyView]:
    """Every key, revoked ones included; never a secret."""
    return [ApiKeyView.of(key) for key in await gateway.keys.list()]


@router.get("/me")
async def who_am_i(caller: Viewer) -> Identity:
    """The calling key's id, name and role."""
    return Identity(key_id=caller.key_id, name=caller.name, role=caller.role)


@router.delete("/{key_id}", responses=problems(404, 409))
async def revoke_api_key(_: Admin, gateway: GatewayDep, key_id: Annotated[str, Path(max_length=64)]) -> ApiKeyView:
    """Revoke a key at once: its next request is a 401. The last admin key cannot be revoked."""
    key = await gateway.keys.revoke(key_id)
    if key is None:
        raise KeyNotFound(key_id)
    return ApiKeyView.of(key)
