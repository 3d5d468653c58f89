"""Who calls: the API key behind `Authorization: Bearer <key>`, counted against its rate limit, and the role a route
requires. Routes declare it with the aliases (`caller: Developer`) or `Depends(require("developer"))`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cache
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from modelops_shared.problems import Problem

from .context import GatewayDep
from .keys import Role
from .ratelimit import STATE_KEY

__all__ = ["Admin", "Approver", "Authenticated", "Caller", "Developer", "Role", "Viewer", "authenticate", "require"]

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


async def authenticate(
    request: Request,
    gateway: GatewayDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    """The caller behind the bearer key, after counting this request against the key's rate limit."""
    if credentials is None:
        raise _unauthorized("send an API key as `Authorization: Bearer <key>`", invalid=False)
    key = await gateway.keys.authenticate(credentials.credentials)
    if key is None:
        raise _unauthorized("the API key is unknown or revoked", invalid=True)
    # Counted before the role check, so a key hammering routes it may not use is limited all the same.
    quota = await gateway.limiter.hit(key.id, key.rate_limit)
    setattr(request.state, STATE_KEY, quota.headers())
    if not quota.allowed:
        raise Problem(
            429,
            "rate-limited",
            f"key {key.name} may make {quota.limit} requests per window",
            retry_after=quota.reset_s or 1,
        )
    return Caller(key_id=key.id, name=key.name, role=key.role)


Authenticated = Annotated[Caller, Depends(authenticate)]


@cache  # one dependency per role: FastAPI then resolves (and rate-counts) a request's caller once
def require(role: Role | str) -> Callable[[Caller], Awaitable[Caller]]:
    """A dependency that answers 403 unless the caller's role includes `role`."""
    required = Role(role)

    async def caller_with_role(caller: Authenticated) -> Caller:
        if not caller.role.includes(required):
            raise Problem(
                403,
                "insufficient-role",
                f"this needs the {required} role; key {caller.name} has {caller.role}",
                required_role=required.value,
            )
        return caller

    return caller_with_role


Viewer = Annotated[Caller, Depends(require(Role.VIEWER))]
Developer = Annotated[Caller, Depends(require(Role.DEVELOPER))]
Approver = Annotated[Caller, Depends(require(Role.APPROVER))]
Admin = Annotated[Caller, Depends(require(Role.ADMIN))]
