"""API key routes (admin): create (the secret is in that response only), list (never a secret), revoke."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime
from typing import Annotated

import asyncpg
from fastapi import APIRouter, Path, Response
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from modelops_shared.problems import Problem
from pydantic import BaseModel, Field, field_validator

from .auth import Admin
from .context import GatewayDep
from .idempotency import Idempotent
from .keys import ApiKey, LastAdminKey, NameTaken, Role
from .openapi import problems
from .settings import checked_rate_limit

JSON_BODY_LIMIT = 16 * 1024

router = APIRouter(prefix="/v1/api-keys", tags=["api keys"], responses=problems(401, 403, 429))


class ApiKeyRequest(BaseModel):
    name: str = Field(
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]*$",
        description="Who holds the key; the registry records it as submitter and approver",
    )
    role: Role
    rate_limit: str | None = Field(None, description="Own limit, e.g. 5/minute; default: the gateway's")

    @field_validator("rate_limit")
    @classmethod
    def _known_rate(cls, value: str | None) -> str | None:
        return None if value is None else checked_rate_limit(value)


class ApiKeyView(BaseModel):
    id: str
    name: str
    role: Role
    rate_limit: str | None
    created_by: str
    created_at: datetime
    revoked_at: datetime | None

    @classmethod
    def of(cls, key: ApiKey) -> ApiKeyView:
        return cls(**asdict(key))


class CreatedApiKey(ApiKeyView):
    key: str | None = Field(description="The secret, shown in this response only (null in an idempotent replay)")


@router.post(
    "", status_code=201, response_model=CreatedApiKey, max_body_size=JSON_BODY_LIMIT, responses=problems(409, 413, 422)
)
async def create_api_key(body: ApiKeyRequest, caller: Admin, gateway: GatewayDep, idempotency: Idempotent) -> Response:
    """A new key; keep its secret now, it cannot be shown again. A replay of this request with the same
    Idempotency-Key returns the key without its secret, which is stored nowhere."""

    async def create(conn: asyncpg.Connection) -> Response:
        try:
            key, secret = await gateway.keys.create(
                conn, name=body.name, role=body.role, rate_limit=body.rate_limit, created_by=caller.name
            )
        except NameTaken:
            raise Problem(409, "api-key-name-taken", f"a live key is already named {body.name}") from None
        return JSONResponse(jsonable_encoder(CreatedApiKey(**ApiKeyView.of(key).model_dump(), key=secret)), 201)

    def without_secret(response: Response) -> Response:
        return JSONResponse({**json.loads(bytes(response.body)), "key": None}, response.status_code)

    return (await idempotency.run(body.model_dump(mode="json"), create, kept=without_secret)).response


@router.get("")
async def list_api_keys(_: Admin, gateway: GatewayDep) -> list[ApiKeyView]:
    """Every key, revoked ones included; never a secret."""
    return [ApiKeyView.of(key) for key in await gateway.keys.list()]


@router.delete("/{key_id}", responses=problems(404, 409))
async def revoke_api_key(_: Admin, gateway: GatewayDep, key_id: Annotated[str, Path(max_length=64)]) -> ApiKeyView:
    """Revoke a key at once: its next request is a 401. The last admin key cannot be revoked."""
    try:
        key = await gateway.keys.revoke(key_id)
    except LastAdminKey:
        raise Problem(409, "last-admin-key", "create another admin key before revoking this one") from None
    if key is None:
        raise Problem(404, "api-key-not-found", f"no API key {key_id}")
    return ApiKeyView.of(key)
