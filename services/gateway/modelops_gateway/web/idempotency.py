"""Idempotency-Key on creating POSTs: the first response per (caller, key) is kept in Postgres and replayed to a
retry of the same request; the same key with a different request is a 422. A route takes `Idempotent` and runs its
creating action through `run`, which claims the key in the transaction the action then writes in; or, when the action
writes outside the database (an upload's Delta commit to the object store), through `run_prepared`, which keeps no
transaction open while that work runs (the work itself is idempotent per the request's token)."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

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
# A key older than the TTL is claimed afresh, and so is one left pending (no response) for longer than the lease: its
# request died while preparing, and the retry prepares again, with the same token.
_CLAIM_SQL = """
INSERT INTO idempotency_keys (key_id, idempotency_key, fingerprint, claim) VALUES ($1, $2, $3, $6)
ON CONFLICT (key_id, idempotency_key) DO UPDATE
    SET fingerprint = excluded.fingerprint, status_code = NULL, headers = NULL, body = NULL, created_at = now(),
        claim = excluded.claim
    WHERE idempotency_keys.created_at < now() - make_interval(secs => $4)
       OR (idempotency_keys.status_code IS NULL AND idempotency_keys.created_at < now() - make_interval(secs => $5))
RETURNING true
"""
PREPARE_LEASE_S = 300  # how long a request may prepare before a retry may take its key over
IN_USE_RETRY_AFTER_S = 2

Action = Callable[[asyncpg.Connection], Awaitable[Response]]
T = TypeVar("T")


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
        claim = uuid.uuid4().hex
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                claimed = await self._claim(conn, fingerprint, claim)
                if not claimed:
                    return Outcome(await self._replay(conn, fingerprint), replayed=True)
                response = await action(conn)
                if response.status_code >= 500:
                    raise _Unkept(response)
                await self._keep(conn, kept(response) if kept else response, claim)
                return Outcome(response, replayed=False)
        except _Unkept as unkept:
            return Outcome(unkept.response, replayed=False)

    async def run_prepared(
        self,
        request: Any,
        prepare: Callable[[str], Awaitable[T]],
        action: Callable[[asyncpg.Connection, T], Awaitable[Response]],
    ) -> Outcome:
        """Like `run`, for an action with work outside the database: `prepare(token)` runs with no transaction open
        and must be idempotent per `token`, which every retry of this request carries again (derived from the caller
        and the Idempotency-Key; a fresh one without a key); `action(conn, prepared)` then records it in a
        transaction that also keeps the response. The key is claimed, as pending, in a transaction of its own first:
        a retry while this request prepares gets 409 `idempotency-key-in-use` rather than waiting; a retry after it
        died (its claim older than the lease) prepares again, with the same token, so nothing is done twice."""
        if self.key is None:
            prepared = await prepare(uuid.uuid4().hex)
            async with self.pool.acquire() as conn, conn.transaction():
                return Outcome(await action(conn, prepared), replayed=False)
        fingerprint = self._fingerprint(request)
        claim = uuid.uuid4().hex
        async with self.pool.acquire() as conn, conn.transaction():
            if not await self._claim(conn, fingerprint, claim):
                return Outcome(await self._replay(conn, fingerprint), replayed=True)
        # The same for every retry of this request; another for the key reused, after it expired, on another request.
        token = hashlib.sha256(f"{self.caller.key_id}\0{self.key}\0{fingerprint}".encode()).hexdigest()[:32]
        try:
            prepared = await prepare(token)
            async with self.pool.acquire() as conn, conn.transaction():
                response = await action(conn, prepared)
                if response.status_code >= 500:
                    raise _Unkept(response)
                await self._keep(conn, response, claim)
                return Outcome(response, replayed=False)
        except BaseException as error:
            await self._release(claim)
            if isinstance(error, _Unkept):
                return Outcome(error.response, replayed=False)
            raise

    async def _claim(self, conn: asyncpg.Connection, fingerprint: str, claim: str) -> bool:
        """Claim the key for this request (`claim` names it: a request that outlived its lease, whose key another
        took over, then neither keeps nor releases what is no longer its own)."""
        claimed = await conn.fetchval(
            _CLAIM_SQL, self.caller.key_id, self.key, fingerprint, self.ttl_s, PREPARE_LEASE_S, claim
        )
        return bool(claimed)

    async def _release(self, claim: str) -> None:
        """Give up this request's pending claim (the request failed): a retry may go at once."""
        await self.pool.execute(
            "DELETE FROM idempotency_keys"
            " WHERE key_id = $1 AND idempotency_key = $2 AND status_code IS NULL AND claim = $3",
            self.caller.key_id,
            self.key,
            claim,
        )

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
        if row["status_code"] is None:
            raise Problem(
                409,
                "idempotency-key-in-use",
                "the request with this Idempotency-Key is still running; retry once it has answered",
                retry_after=IN_USE_RETRY_AFTER_S,
            )
        return Response(row["body"], row["status_code"], headers={**row["headers"], REPLAYED_HEADER: "true"})

    async def _keep(self, conn: asyncpg.Connection, response: Response, claim: str) -> None:
        headers = {name: value for name, value in response.headers.items() if name in _KEPT_HEADERS}
        kept = await conn.execute(
            "UPDATE idempotency_keys SET status_code = $3, headers = $4, body = $5"
            " WHERE key_id = $1 AND idempotency_key = $2 AND claim = $6",
            self.caller.key_id,
            self.key,
            response.status_code,
            headers,
            bytes(response.body),
            claim,
        )
        if kept == "UPDATE 0":  # a retry took the key over after our lease: its answer is the one kept
            raise Problem(409, "idempotency-key-in-use", "this request outlived its claim on the Idempotency-Key")


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
