"""The database layer (modelops_shared.db): versioned migrations under an advisory lock, replicas starting together
applying each file once; and the pool's statement timeout."""

import asyncio
import uuid

import pytest
from modelops_shared.db import MigrationError, apply_migrations, create_pool


@pytest.fixture
def migrations(tmp_path):
    folder = tmp_path / "migrations"
    folder.mkdir()
    # CREATE TABLE without IF NOT EXISTS: a second application would fail, so a race would show.
    (folder / "0001_things.sql").write_text("CREATE TABLE things (id int PRIMARY KEY); CREATE TABLE runs (n int);")
    (folder / "0002_seed.sql").write_text("INSERT INTO runs VALUES (1); INSERT INTO things VALUES (1);")
    return folder


async def test_concurrent_replicas_apply_each_migration_once(embedded_stack, migrations):
    schema = f"mig_{uuid.uuid4().hex[:10]}"
    pools = [await create_pool(embedded_stack, schema) for _ in range(4)]
    try:
        results = await asyncio.gather(*(apply_migrations(p, schema, ("svc", migrations)) for p in pools))

        applied = [versions for versions in results if versions]
        assert applied == [
            [
                "runtime:0001_bus",
                "runtime:0002_tracking",
                "runtime:0003_topic_incarnations",
                "svc:0001_things",
                "svc:0002_seed",
            ]
        ]
        assert await pools[0].fetchval("SELECT count(*) FROM runs") == 1
        assert await apply_migrations(pools[0], schema, ("svc", migrations)) == []
    finally:
        for pool in pools:
            await pool.close()


async def test_an_edited_migration_refuses_to_start(embedded_stack, migrations):
    schema = f"mig_{uuid.uuid4().hex[:10]}"
    pool = await create_pool(embedded_stack, schema)
    try:
        await apply_migrations(pool, schema, ("svc", migrations))
        (migrations / "0001_things.sql").write_text("CREATE TABLE things (id bigint PRIMARY KEY);")
        with pytest.raises(MigrationError, match="svc:0001_things changed"):
            await apply_migrations(pool, schema, ("svc", migrations))
    finally:
        await pool.close()


async def test_unsafe_schema_names_are_refused(embedded_stack):
    with pytest.raises(MigrationError):
        await create_pool(embedded_stack, 'x"; DROP SCHEMA public; --')


async def test_a_drained_pool_fails_its_next_caller_fast_instead_of_queueing_it(embedded_stack):
    settings = embedded_stack.model_copy(update={"database_acquire_timeout_s": 0.5, "database_pool_max": 1})
    pool = await create_pool(settings, f"timeouts_{uuid.uuid4().hex[:8]}")
    try:
        async with pool.acquire():  # a stuck caller holds the only connection
            with pytest.raises(TimeoutError):
                await pool.fetchval("SELECT 1")
        assert await pool.fetchval("SELECT 1") == 1  # free again: the pool goes on
    finally:
        await pool.close()


async def test_a_stuck_statement_times_out_instead_of_holding_its_caller(embedded_stack):
    settings = embedded_stack.model_copy(update={"database_command_timeout_s": 0.5})
    pool = await create_pool(settings, f"timeouts_{uuid.uuid4().hex[:8]}")
    try:
        with pytest.raises(TimeoutError):
            await pool.fetchval("SELECT pg_sleep(5)")
        assert await pool.fetchval("SELECT 1") == 1  # the pool goes on
    finally:
        await pool.close()
