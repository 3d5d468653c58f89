"""Postgres: an asyncpg pool confined to one schema per service, and versioned SQL migrations applied
under an advisory lock so that replicas starting together never race."""

from __future__ import annotations

import hashlib
import inspect
import json
import re
from collections.abc import Iterable
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any

import asyncpg

from .settings import Settings

RUNTIME_MIGRATIONS: Traversable = files("modelops_shared") / "migrations"
# asyncpg.create_pool's own defaults, for building its Pool class ourselves (a subclass of it) exactly as it would.
_POOL_DEFAULTS = {
    name: parameter.default
    for name, parameter in inspect.signature(asyncpg.create_pool).parameters.items()
    if parameter.kind is inspect.Parameter.KEYWORD_ONLY
}
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class MigrationError(RuntimeError):
    """An applied migration's file changed, or a schema name is unsafe."""


def _checked_schema(schema: str) -> str:
    if not _SCHEMA_NAME.match(schema):
        raise MigrationError(f"unsafe schema name {schema!r}")
    return schema


async def _init_connection(conn: asyncpg.Connection) -> None:
    for json_type in ("json", "jsonb"):
        await conn.set_type_codec(json_type, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


class BoundedPool(asyncpg.Pool):  # type: ignore[misc]  # asyncpg ships no type hints
    """A pool whose callers wait at most `acquire_timeout_s` for a free connection (unless one says otherwise): when
    stuck callers hold every connection, the next ones fail with a TimeoutError instead of queueing forever."""

    def __init__(self, *args: Any, acquire_timeout_s: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.acquire_timeout_s = acquire_timeout_s

    def acquire(self, *, timeout: float | None = None) -> Any:
        return super().acquire(timeout=self.acquire_timeout_s if timeout is None else timeout)


async def create_pool(settings: Settings, schema: str, *, min_size: int = 1) -> asyncpg.Pool:
    """A pool whose connections see `schema` first on the search path (created when missing)."""
    schema = _checked_schema(schema)
    dsn = settings.database_url.get_secret_value()
    conn = await asyncpg.connect(dsn, timeout=settings.database_connect_timeout_s)
    try:
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    except asyncpg.UniqueViolationError:
        pass  # a replica created it between our check and our CREATE; it exists, which is all we need
    finally:
        await conn.close()
    options = {
        **_POOL_DEFAULTS,
        "min_size": min_size,
        "max_size": settings.database_pool_max,
        "init": _init_connection,
    }
    pool: asyncpg.Pool = await BoundedPool(
        dsn,
        acquire_timeout_s=settings.database_acquire_timeout_s,
        timeout=settings.database_connect_timeout_s,
        command_timeout=settings.database_command_timeout_s,
        server_settings={"search_path": f'"{schema}",public', "application_name": settings.service_name},
        **options,
    )
    return pool


def _advisory_key(schema: str) -> int:
    """A stable signed 64-bit lock id per schema (pg_advisory locks take bigint)."""
    return int.from_bytes(hashlib.sha256(f"migrations:{schema}".encode()).digest()[:8], "big", signed=True)


def _migration_files(directories: Iterable[tuple[str, Traversable]]) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for namespace, directory in directories:
        scripts = sorted((f for f in directory.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name)
        found.extend((f"{namespace}:{f.name.removesuffix('.sql')}", f.read_text()) for f in scripts)
    return found


async def apply_migrations(pool: asyncpg.Pool, schema: str, *directories: tuple[str, Traversable]) -> list[str]:
    """Apply the runtime migrations, then each `(namespace, folder)` of `NNNN_name.sql` files, in order,
    in one transaction under an advisory lock; returns the versions applied now.

    Refuses to start when an already-applied file was edited: a migration is history, change it with a new one.
    """
    schema = _checked_schema(schema)
    pending = _migration_files((("runtime", RUNTIME_MIGRATIONS), *directories))
    applied_now: list[str] = []
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _advisory_key(schema))
        await conn.execute(f'SET LOCAL search_path TO "{schema}"')
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        applied = {
            r["version"]: r["checksum"] for r in await conn.fetch("SELECT version, checksum FROM schema_migrations")
        }
        for version, sql in pending:
            checksum = hashlib.sha256(sql.encode()).hexdigest()
            if version in applied:
                if applied[version] != checksum:
                    raise MigrationError(f"migration {version} changed after it was applied to schema {schema}")
                continue
            await conn.execute(sql)
            await conn.execute("INSERT INTO schema_migrations (version, checksum) VALUES ($1, $2)", version, checksum)
            applied_now.append(version)
    return applied_now
