"""Registry benchmark: registrations/s for submissions through Kafka, and replay events/s from the log.

Baselines in the same run: a bare asyncpg COPY of the same artifact and file rows (the database's floor for
writing that state) and bare signing of the same statements (the cryptography's floor). Runs on a fresh embedded
stack of its own; the registry runs as its own process, as in production.

    python bench/registry.py [--submissions 20000]

Targets (issue #3): ≥ 1,000 registrations/s live and ≥ 5,000 events/s replay on the 2-core machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import io
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from isolated_stack import isolated_stack
from modelops_contracts import ArtifactKind, ArtifactSubmitted, FileDigest
from modelops_registry.replay import replay
from modelops_registry.settings import RegistrySettings
from modelops_shared.bus import Bus
from modelops_shared.devstack import free_port
from modelops_shared.signing.bundles import build_statement, sign
from modelops_shared.signing.keys import KeyRing
from modelops_shared.storage import open_store

FILES = {"config.json": b'{"architectures": ["LlamaForCausalLM"]}', "adapter_model.safetensors": os.urandom(4096)}


def _submissions(n: int, uri: str) -> list[ArtifactSubmitted]:
    digests = [FileDigest(path=p, sha256=hashlib.sha256(d).hexdigest(), size=len(d)) for p, d in FILES.items()]
    # Every submission names the same stored folder: the registry still re-hashes it each time.
    return [
        ArtifactSubmitted(
            artifact_id=f"bench-{uuid.uuid4().hex}",
            kind=ArtifactKind.ADAPTER,
            name=f"bench-adapter-{i % 100}",
            uri=uri,
            files=digests,
            metrics={"eval_loss": 1.0},
            created_by="bench",
        )
        for i in range(n)
    ]


async def _publish(settings: RegistrySettings, submissions: list[ArtifactSubmitted]) -> None:
    bus = Bus(settings.model_copy(update={"service_name": "bench-registry"}))
    await bus.start()
    try:
        for start in range(0, len(submissions), 1000):
            await asyncio.gather(*(bus.publish(s) for s in submissions[start : start + 1000]))
    finally:
        await bus.stop()


async def bench_live(settings: RegistrySettings, schema: str, keys: Path, n: int) -> float:
    store = open_store(settings.store_url, settings)
    prefix = f"bench/registry/{uuid.uuid4().hex[:8]}"
    for path, data in FILES.items():
        await store.put(f"{prefix}/{path}", data)
    submissions = _submissions(n, store.url_of(prefix))
    await _publish(settings, submissions)  # all queued first: the registry's own pace is what is measured
    env = {
        **os.environ,
        "MODELOPS_SERVICE_NAME": "registry",
        "MODELOPS_REGISTRY_SCHEMA": schema,
        "MODELOPS_REGISTRY_PORT": str(free_port()),
        "MODELOPS_REGISTRY_KEYS_DIR": str(keys),
        "MODELOPS_LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen([sys.executable, "-m", "modelops_registry"], env=env)
    conn = await asyncpg.connect(settings.database_url.get_secret_value())
    # The stack is fresh, so every artifact is one of ours. Matching them by id instead (5,000 ids sent and looked up
    # every 50 ms) cost the 2-core machine enough CPU to slow the registry it measures.
    query = f'SELECT count(*) FROM "{schema}".artifacts'
    try:
        first: tuple[float, int] | None = None
        while True:
            with contextlib.suppress(asyncpg.UndefinedTableError):
                done = await conn.fetchval(query)
                if done and first is None:
                    first = (time.perf_counter(), done)
                if done == n:
                    break
            await asyncio.sleep(0.05)
        assert first is not None
        return (n - first[1]) / (time.perf_counter() - first[0])
    finally:
        await conn.close()
        process.terminate()
        process.wait()


async def bench_replay(settings: RegistrySettings) -> tuple[float, int]:
    conn = await asyncpg.connect(settings.database_url.get_secret_value())
    events = await conn.fetchval(f'SELECT seq FROM "{settings.registry_schema}".event_log_head')
    await conn.close()
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        await replay(settings)
    return events / (time.perf_counter() - started), events


async def bench_copy(settings: RegistrySettings, n: int) -> float:
    """The same artifact and file rows, written by COPY into plain tables in one transaction."""
    conn = await asyncpg.connect(settings.database_url.get_secret_value())
    schema = f"bench_copy_{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    artifacts = [
        (f"a{i}", "adapter", f"n{i % 100}", str(i), "dev", "0" * 64, 4096, "file:///x", "file:///b", "k", "bench", now)
        for i in range(n)
    ]
    files = [(f"a{i}", path, "0" * 64, 1) for i in range(n) for path in FILES]
    try:
        await conn.execute(
            f"CREATE SCHEMA {schema}; CREATE TABLE {schema}.artifacts (id text PRIMARY KEY, kind text, name text,"
            " version text, stage text, digest text, size bigint, uri text, bundle_uri text, key_id text,"
            f" created_by text, created_at timestamptz); CREATE TABLE {schema}.files (artifact_id text, path text,"
            " sha256 text, size bigint, PRIMARY KEY (artifact_id, path))"
        )
        started = time.perf_counter()
        async with conn.transaction():
            await conn.copy_records_to_table("artifacts", records=artifacts, schema_name=schema)
            await conn.copy_records_to_table("files", records=files, schema_name=schema)
        return n / (time.perf_counter() - started)
    finally:
        await conn.execute(f"DROP SCHEMA {schema} CASCADE")
        await conn.close()


def bench_signing(keys: Path, n: int) -> float:
    key = KeyRing.load_or_create(keys).active
    submissions = _submissions(n, "file:///x")
    started = time.perf_counter()
    for s in submissions:
        sign(
            build_statement(
                s.name,
                s.files,
                {"kind": "adapter", "base_model_digest": None, "parents": [], "job_id": None, "metrics": s.metrics},
            ),
            key,
        )
    return n / (time.perf_counter() - started)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--submissions", type=int, default=20000)
    args = parser.parse_args()
    n = args.submissions
    schema = "registry"
    async with isolated_stack() as stack:
        settings = RegistrySettings(**stack.model_dump(exclude={"service_name"}), registry_schema=schema)
        keys = stack.state_dir / "keys"
        live = await bench_live(settings, schema, keys, n)
        replayed, events = await bench_replay(settings)
        copy = await bench_copy(settings, n)
        signing = bench_signing(keys, n)
    print(f"registry benchmark: {n} submissions through Kafka (ed25519)")
    print(f"  live registrations/s  {live:9.0f}   (target ≥ 1,000)")
    print(f"  replay events/s       {replayed:9.0f}   over {events} logged events (target ≥ 5,000)")
    print(f"  baseline COPY rows/s  {copy:9.0f}   ratio live/COPY {live / copy:.3f}")
    print(f"  baseline signing/s    {signing:9.0f}   ratio live/signing {live / signing:.3f}")


if __name__ == "__main__":
    asyncio.run(main())
