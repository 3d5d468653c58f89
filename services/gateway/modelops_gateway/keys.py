"""API keys: roles, creation (the secret is shown once), lookup by digest, listing, revocation, and the first
admin key a fresh gateway writes to its state directory."""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path

import asyncpg

log = logging.getLogger(__name__)

SECRET_PREFIX = "mok_"  # lets secret scanners and people recognise a leaked ModelOps key
BOOTSTRAP_ADMIN_NAME = "admin"
_BOOTSTRAP_LOCK_SQL = "SELECT pg_advisory_xact_lock(hashtext('gateway_admin_bootstrap:' || current_schema()))"
_COLUMNS = "id, name, role, rate_limit, created_by, created_at, revoked_at"


class Role(StrEnum):
    """Roles in increasing power; each includes every role before it."""

    VIEWER = "viewer"
    DEVELOPER = "developer"
    APPROVER = "approver"
    ADMIN = "admin"

    def includes(self, required: Role) -> bool:
        order = list(Role)
        return order.index(self) >= order.index(required)


class NameTaken(Exception):
    """Another live key already has this name."""


class LastAdminKey(Exception):
    """Revoking this key would leave nobody able to manage keys."""


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    role: Role
    rate_limit: str | None
    created_by: str
    created_at: datetime
    revoked_at: datetime | None

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> ApiKey:
        return cls(**{**dict(row), "role": Role(row["role"])})


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    # Plain sha256 rather than a password hash (bcrypt, argon2): the secret is 256 random bits, so a slow hash would
    # not make guessing any harder, while a deterministic digest lets each request find its key through an index.
    return hashlib.sha256(secret.encode()).hexdigest()


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
        return ApiKey.from_row(row), secret

    async def authenticate(self, secret: str) -> ApiKey | None:
        """The live key whose secret this is; None for an unknown or revoked one."""
        row = await self.pool.fetchrow(
            f"SELECT {_COLUMNS} FROM api_keys WHERE secret_sha256 = $1 AND revoked_at IS NULL", digest(secret)
        )
        return ApiKey.from_row(row) if row else None

    async def list(self) -> list[ApiKey]:
        rows = await self.pool.fetch(f"SELECT {_COLUMNS} FROM api_keys ORDER BY created_at, id")
        return [ApiKey.from_row(row) for row in rows]

    async def revoke(self, key_id: str) -> ApiKey | None:
        """Revoke the key (already revoked is fine); None when there is no such key."""
        async with self.pool.acquire() as conn, conn.transaction():
            # Locking every live admin row serialises concurrent revocations, so two of them cannot each leave
            # the other's key as the last admin and both succeed.
            admins = await conn.fetch(
                "SELECT id FROM api_keys WHERE role = 'admin' AND revoked_at IS NULL ORDER BY id FOR UPDATE"
            )
            if [row["id"] for row in admins] == [key_id]:
                raise LastAdminKey(key_id)
            row = await conn.fetchrow(
                f"UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 RETURNING {_COLUMNS}",
                key_id,
            )
        return ApiKey.from_row(row) if row else None

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
