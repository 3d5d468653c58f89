"""The `api_keys` table: creation (the secret is returned once and stored only as its digest), lookup by digest,
listing, revocation, and the first admin key a fresh gateway writes to its state directory."""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path

import asyncpg

from .domain import ApiKey, LastAdminKey, NameTaken, Role, digest, new_secret

log = logging.getLogger(__name__)

BOOTSTRAP_ADMIN_NAME = "admin"
_BOOTSTRAP_LOCK_SQL = "SELECT pg_advisory_xact_lock(hashtext('gateway_admin_bootstrap:' || current_schema()))"
_COLUMNS = "id, name, role, rate_limit, created_by, created_at, revoked_at"


class KeyStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def create(
        self, conn: asyncpg.Connection, *, name: str, role: Role, rate_limit: str | None, created_by: str
    ) -> tuple[ApiKey, str]:
        """A new key in the caller's transaction; returns it with its secret, which is stored nowhere."""
        secret = new_secret()
        try:
            row = await conn.fetchrow(
                "INSERT INTO api_keys (id, name, role, rate_limit, secret_sha256, created_by)"
                f" VALUES ($1, $2, $3, $4, $5, $6) RETURNING {_COLUMNS}",
                f"key_{uuid.uuid4().hex[:16]}",
                name,
                role.value,
                rate_limit,
                digest(secret),
                created_by,
            )
        except asyncpg.UniqueViolationError:
            raise NameTaken(name) from None
        return _key_of(row), secret

    async def authenticate(self, secret: str) -> ApiKey | None:
        """The live key whose secret this is; None for an unknown or revoked one."""
        row = await self.pool.fetchrow(
            f"SELECT {_COLUMNS} FROM api_keys WHERE secret_sha256 = $1 AND revoked_at IS NULL", digest(secret)
        )
        return _key_of(row) if row else None

    async def list(self) -> list[ApiKey]:
        rows = await self.pool.fetch(f"SELECT {_COLUMNS} FROM api_keys ORDER BY created_at, id")
        return [_key_of(row) for row in rows]

    async def revoke(self, key_id: str) -> ApiKey | None:
        """Revoke the key (already revoked is fine); None when there is no such key."""
        async with self.pool.acquire() as conn, conn.transaction():
            # Locking every live admin row serialises concurrent revocations, so two of them cannot each leave
            # the other's key as the last admin and both succeed.
            admins = await conn.fetch(
                "SELECT id FROM api_keys WHERE role = 'admin' AND revoked_at IS NULL ORDER BY id FOR UPDATE"
            )
            if [row["id"] for row in admins] == [key_id]:
                raise LastAdminKey()
            row = await conn.fetchrow(
                f"UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 RETURNING {_COLUMNS}",
                key_id,
            )
        return _key_of(row) if row else None

    async def ensure_admin(self, key_file: Path) -> ApiKey | None:
        """Create an admin key when no live one exists and write its secret to `key_file` (0600); returns the new
        key, or None when an admin key already existed. Replicas starting together create one between them."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(_BOOTSTRAP_LOCK_SQL)
            if await conn.fetchval("SELECT 1 FROM api_keys WHERE role = 'admin' AND revoked_at IS NULL"):
                return None
            key, secret = await self.create(
                conn, name=BOOTSTRAP_ADMIN_NAME, role=Role.ADMIN, rate_limit=None, created_by="bootstrap"
            )
            # Written before the commit: should the write fail, no key exists that nobody can read.
            write_secret(key_file, secret)
        log.info("created the first admin key %s; its secret is in %s", key.id, key_file)
        return key


def write_secret(path: Path, secret: str) -> None:
    """Replace `path` with `secret`, readable by its owner only, never visible half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    descriptor = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(secret + "\n")
        os.replace(staged, path)
    except BaseException:
        staged.unlink(missing_ok=True)
        raise


def _key_of(row: asyncpg.Record) -> ApiKey:
    return ApiKey(**{**dict(row), "role": Role(row["role"])})
