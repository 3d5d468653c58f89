"""Who calls: the API key behind `Authorization: Bearer <key>`, counted against its rate limit, and the role a route
requires. Routes declare it with the aliases (`caller: Developer`) or `Depends(require("developer"))`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cache
from typing import Annotated

from fastapi import Depends, HTTPException, Request, WebSocket
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from modelops_shared.problems import Problem

from ..access.domain import Role
from ..deps import Gateway, GatewayDep
from .ratelimit import STATE_KEY, Quota

__all__ = [
    "Admin",
    "Approver",
    "Authenticated",
    "Caller",
    "Developer",
    "Role",
    "Viewer",
    "authenticate",
    "authenticate_websocket",
    "require",
]

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer <key>`")
_REALM = 'Bearer realm="modelops"'


@dataclass(frozen=True)
class Caller:
    """The API key a request came with: its id, its name (the actor the registry records) and its role."""

    key_id: str
    name: str
    role: Role


def _unauthorized(detail: str, *, invalid: bool) -> HTTPException:
    # RFC 6750: a challenge on every 401, with error="invalid_token" when a key was sent but is not accepted.
    challenge = f'{_REALM}, error="invalid_token"' if invalid else _REALM
    return HTTPException(401, detail, headers={"WWW-Authenticate": challenge})


async def _counted_caller(gateway: Gateway, secret: str | None) -> tuple[Caller, Quota]:
    """The caller behind `secret`, with this request counted against its key's rate limit."""
    if secret is None:
        raise _unauthorized("send an API key as `Authorization: Bearer <key>`", invalid=False)
    key = await gateway.keys.authenticate(secret)
    if key is None:
        raise _unauthorized("the API key is unknown or revoked", invalid=True)
    # Counted before the role check, so a key hammering routes it may not use is limited all the same.
    quota = await gateway.limiter.hit(key.id, key.rate_limit)
    return Caller(key_id=key.id, name=key.name, role=key.role), quota


def _check_quota(caller: Caller, quota: Quota) -> None:
    if not quota.allowed:
        raise Problem(
            429,
            "rate-limited",
            f"key {caller.name} may make {quota.limit} requests per window",
            retry_after=quota.reset_s or 1,
        )


def _check_role(caller: Caller, required: Role) -> Caller:
    if not caller.role.includes(required):
        raise Problem(
            403,
            "insufficient-role",
            f"this needs the {required} role; key {caller.name} has {caller.role}",
            required_role=required.value,
        )
    return caller


async def authenticate(
    request: Request,
    gateway: GatewayDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    """The caller behind the bearer key, after counting this request against the key's rate limit."""
    caller, quota = await _counted_caller(gateway, credentials.credentials if credentials else None)
    setattr(request.state, STATE_KEY, quota.headers())
    _check_quota(caller, quota)
    return caller


async def authenticate_websocket(websocket: WebSocket, gateway: Gateway, role: Role, api_key: str | None) -> Caller:
    """The caller of a WebSocket, with `role` or above: its key in `Authorization: Bearer <key>` or, for clients
    that cannot set headers on a WebSocket (browsers), in the `api_key` query parameter. Raises what `authenticate`
    and `require` raise, for the route to answer as an HTTP denial of the handshake."""
    scheme, _, credentials = websocket.headers.get("authorization", "").partition(" ")
    secret = credentials.strip() if scheme.lower() == "bearer" and credentials.strip() else api_key
    caller, quota = await _counted_caller(gateway, secret)
    _check_quota(caller, quota)
    return _check_role(caller, role)


Authenticated = Annotated[Caller, Depends(authenticate)]


@cache  # one dependency per role: FastAPI then resolves (and rate-counts) a request's caller once
def require(role: Role | str) -> Callable[[Caller], Awaitable[Caller]]:
    """A dependency that answers 403 unless the caller's role includes `role`."""
    required = Role(role)

    async def caller_with_role(caller: Authenticated) -> Caller:
        return _check_role(caller, required)

    return caller_with_role


Viewer = Annotated[Caller, Depends(require(Role.VIEWER))]
Developer = Annotated[Caller, Depends(require(Role.DEVELOPER))]
Approver = Annotated[Caller, Depends(require(Role.APPROVER))]
Admin = Annotated[Caller, Depends(require(Role.ADMIN))]
