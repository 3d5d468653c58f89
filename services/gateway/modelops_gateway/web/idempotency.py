"""Idempotency-Key on creating POSTs: the first response per (caller, key) is kept in Postgres and replayed to a
retry of the same request; the same key with a different request is a 422. A route takes `Idempotent` and runs its
creating action through `run`, which claims the key in the transaction the action then writes in."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

import asyncpg
from fastapi import Depends, Header, Request, Response
from fastapi.encoders import jsonable_encoder
from modelops_shared.problems import Problem

from ..deps import GatewayDep
from .auth import Authenticated, Caller

REPLAYED_HEADER = "Idempotency-Replayed"
_KEPT_HEADERS = ("content-type", "location")

# Two requests with one key: the second INSERT waits on the first's uncommitted row and, once that commits, finds
# the conflict (and reads the completed row) — or, if it rolled back, claims the key itself. Neither runs twice.
# A key older than the TTL is claimed afresh.
_CLAIM_SQL = """
INSERT INTO idempotency_keys (key_id, idempotency_key, fingerprint) VALUES ($1, $2, $3)
ON CONFLICT (key_id, idempotency_key) DO UPDATE
    SET fingerprint = excluded.fingerprint, status_code = NULL, headers = NULL, body = NULL, created_at = now()
    WHERE idempotency_keys.created_at < now() - make_interval(secs => $4)
RETURNING true
"""

Action = Callable[[asyncpg.Connection], Awaitable[Response]]


@dataclass(frozen=True)
class Outcome:
    response: Response
    replayed: bool  # True: the action did not run now; whatever the request prepared for it should be undone


class _Unkept(Exception):
    """Carries a response out of a transaction that must not keep the claim (a 5xx the client should retry)."""

    def __init__(self, response: Response) -> None:
        self.response = response


@dataclass(frozen=True)
class Idempotency:
    pool: asyncpg.Pool
    caller: Caller
    key: str | None
    method: str
    path: str
    ttl_s: int

    async def run(self, request: Any, action: Action, *, kept: Callable[[Response], Response] | None = None) -> Outcome:
        """Run `action` in a transaction, once per Idempotency-Key, and keep its response (or `kept(response)`,
        for a response holding a secret) unless it is a 5xx. `request` is what makes two requests the same: the
        validated input (JSON-able), not raw bytes, which differ between retries of a multipart upload."""
        if self.key is None:
            async with self.pool.acquire() as conn, conn.transaction():
                return Outcome(await action(conn), replayed=False)
        fingerprint = self._fingerprint(request)
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                claimed = await conn.fetchval(_CLAIM_SQL, self.caller.key_id, self.key, fingerprint, self.ttl_s)
                if not claimed:
                    return Outcome(await self._replay(conn, fingerprint), replayed=True)
                response = await action(conn)
                if response.status_code >= 500:
                    raise _Unkept(response)
                await self._keep(conn, kept(response) if kept else response)
                return Outcome(response, replayed=False)
        except _Unkept as unkept:
            return Outcome(unkept.response, replayed=False)

    def _fingerprint(self, request: Any) -> str:
        canonical = json.dumps(
            {"method": self.method, "path": self.path, "request": jsonable_encoder(request)},
            sort_keys=True,
            separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode()).hexdigest()

    async def _replay(self, conn: asyncpg.Connection, fingerprint: str) -> Response:
        row = await conn.fetchrow(
            "SELECT fingerprint, status_code, headers, body FROM idempotency_keys"
            " WHERE key_id = $1 AND idempotency_key = $2",
            self.caller.key_id,
            self.key,
        )
        if row["fingerprint"] != fingerprint:
            raise Problem(
                422,
                "idempotency-key-reused",
                "this Idempotency-Key was used for a different request; use a new key for a new request",
            )
        return Response(row["body"], row["status_code"], headers={**row["headers"], REPLAYED_HEADER: "true"})

    async def _keep(self, conn: asyncpg.Connection, response: Response) -> None:
        headers = {name: value for name, value in response.headers.items() if name in _KEPT_HEADERS}
        await conn.execute(
            "UPDATE idempotency_keys SET status_code = $3, headers = $4, body = $5"
            " WHERE key_id = $1 AND idempotency_key = $2",
            self.caller.key_id,
            self.key,
            response.status_code,
            headers,
            bytes(response.body),
        )


async def purge_expired(pool: asyncpg.Pool, ttl_s: int) -> int:
    """Forget keys older than the TTL; returns how many."""
    result: str = await pool.execute(
        "DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(secs => $1)", ttl_s
    )
    return int(result.split()[-1])


async def idempotency(
    request: Request,
    gateway: GatewayDep,
    caller: Authenticated,
    key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=255,
            description="Makes a retry safe: the same key and request return the first response, "
            "without doing the work again",
        ),
    ] = None,
) -> Idempotency:
    return Idempotency(
        gateway.runtime.pool, caller, key, request.method, request.url.path, gateway.settings.gateway_idempotency_ttl_s
    )


Idempotent = Annotated[Idempotency, Depends(idempotency)]
