"""The registry as a real process: killed mid-batch it resumes to the digest of a clean replay; duplicates change
nothing; `verify-log` catches an edited, deleted or reordered row; P-256 bundles verify with OpenSSF model_signing."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from helpers import service_auth
from modelops_contracts import encode
from modelops_contracts.catalog import ARTIFACT_SUBMISSIONS
from modelops_registry.checkpoints import prefix_of
from modelops_registry.store.eventlog import chain_hash
from modelops_shared.devstack import free_port
from modelops_shared.storage import ObjectNotFound, open_store

from .support import WAIT_S, verdict

SUBMISSIONS = 1500


class RegistryProcess:
    """`python -m modelops_registry` on its own schema, port and keys; restartable."""

    def __init__(self, schema: str, keys_dir: Path, algorithm: str) -> None:
        self.port = free_port()
        self.env = {
            **os.environ,
            "MODELOPS_SERVICE_NAME": "registry",
            "MODELOPS_REGISTRY_SCHEMA": schema,
            "MODELOPS_REGISTRY_PORT": str(self.port),
            "MODELOPS_REGISTRY_KEYS_DIR": str(keys_dir),
            "MODELOPS_REGISTRY_SIGNING_ALGORITHM": algorithm,
            "MODELOPS_LOG_LEVEL": "WARNING",
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.client = httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{self.port}", timeout=30, auth=service_auth("registry")
        )

    async def start(self) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "modelops_registry"], env=self.env)
        async with asyncio.timeout(WAIT_S):
            while True:
                try:
                    if (await self.client.get("/readyz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.2)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def command(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "modelops_registry", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )


@pytest.fixture
def registry_process(embedded_stack, tmp_path) -> Iterator[RegistryProcess]:
    process = RegistryProcess(f"regp_{tmp_path.name[-8:].lower().replace('-', '_')}", tmp_path / "keys", "ecdsa-p256")
    yield process
    if process.process and process.process.poll() is None:
        process.kill()


async def _count(dsn: str, schema: str, sql: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval(sql.replace("{schema}", schema)))
    except asyncpg.UndefinedTableError:
        return 0
    finally:
        await conn.close()


def _replayed_digest(process: RegistryProcess) -> str:
    result = process.command("replay")
    assert result.returncode == 0, result.stderr
    return result.stdout.split("state digest: ")[1].strip()


async def test_killed_mid_batch_resumes_to_the_digest_of_a_clean_replay(registry_process, registry):
    # Queued before the registry starts, so it meets a backlog of several batches and the kill lands mid-stream.
    submitted = [await registry.submitter.submit() for _ in range(SUBMISSIONS)]
    schema, dsn = registry_process.env["MODELOPS_REGISTRY_SCHEMA"], registry.settings.database_url.get_secret_value()
    ids = tuple(s.artifact_id for s in submitted)
    # Only this test's artifacts: the topic also holds what earlier tests of the session submitted (the gateway's).
    ours = f"SELECT count(*) FROM {{schema}}.artifacts WHERE id IN {ids!r}".replace(",)", ")")
    await registry_process.start()
    async with asyncio.timeout(WAIT_S):
        while await _count(dsn, schema, ours) == 0:
            await asyncio.sleep(0.01)
    registry_process.kill()  # mid-stream: some batches committed, one perhaps half-applied and rolled back
    done_before_kill = await _count(dsn, schema, ours)
    assert done_before_kill < SUBMISSIONS

    await registry_process.start()
    async with asyncio.timeout(WAIT_S):
        while await _count(dsn, schema, ours) < SUBMISSIONS:
            await asyncio.sleep(0.1)
    assert await _count(dsn, schema, ours) == SUBMISSIONS  # each exactly once
    for submission in submitted[:: SUBMISSIONS // 10]:
        response = await verdict(registry_process.client, submission.artifact_id)
        assert response["id"] == submission.artifact_id
    live = (await registry_process.client.get("/v1/state-digest")).json()["state_digest"]
    assert _replayed_digest(registry_process) == live
    assert registry_process.command("verify-log").returncode == 0


async def test_a_thousand_duplicate_deliveries_change_nothing(registry_process, registry):
    await registry_process.start()
    submission = await registry.submitter.submit()
    await verdict(registry_process.client, submission.artifact_id)
    before = await _settled(registry_process.client)

    bus = registry.submitter.bus
    record = encode(submission, bus.envelope_for(submission))
    for _ in range(1000):
        await bus.publish_record(ARTIFACT_SUBMISSIONS.name, record)
    # Same key, so same partition, after the thousand: once it is logged, every duplicate has been seen.
    marker = encode(submission, bus.envelope_for(submission))
    await bus.publish_record(ARTIFACT_SUBMISSIONS.name, marker)
    async with asyncio.timeout(WAIT_S):
        while (await registry_process.client.get("/v1/state-digest")).json()["log_seq"] < before["log_seq"] + 2:
            await asyncio.sleep(0.1)

    after = (await registry_process.client.get("/v1/state-digest")).json()
    assert after["state_digest"] == before["state_digest"]  # the resubmission is logged, decided nothing new
    assert after["log_seq"] == before["log_seq"] + 2  # the first copy of `record`, and the marker


async def _settled(client: httpx.AsyncClient) -> dict:
    """The state once the registry has worked through the topics' history (earlier tests' events included)."""
    previous = None
    async with asyncio.timeout(WAIT_S):
        while True:
            current = (await client.get("/v1/state-digest")).json()
            if current == previous:
                return current
            previous = current
            await asyncio.sleep(1.0)


async def test_verify_log_catches_edits_deletions_and_reordering(registry_process, registry):
    await registry_process.start()
    for _ in range(3):
        await verdict(registry_process.client, (await registry.submitter.submit()).artifact_id)
    registry_process.kill()
    assert registry_process.command("verify-log").returncode == 0
    log = f"{registry_process.env['MODELOPS_REGISTRY_SCHEMA']}.event_log"
    columns = "event_id, type, subject, correlation_id, canonical, prev_hash, hash"
    tampering = {
        "edited": f"UPDATE {log} SET canonical = convert_to(convert_from(canonical, 'UTF8') || ' ', 'UTF8')"
        " WHERE seq = 2",
        "deleted": f"DELETE FROM {log} WHERE seq = 3",
        "reordered": f"DELETE FROM {log} WHERE seq IN (2, 3);"
        f" INSERT INTO {log} SELECT CASE seq WHEN 2 THEN 3 ELSE 2 END, {columns} FROM pristine WHERE seq IN (2, 3)",
        "truncated": f"DELETE FROM {log} WHERE seq = (SELECT max(seq) FROM {log})",
    }
    conn = await asyncpg.connect(registry.settings.database_url.get_secret_value())
    try:
        await conn.execute(f"CREATE TEMP TABLE pristine AS SELECT * FROM {log}")
        for name, sql in tampering.items():
            await conn.execute(sql)
            result = registry_process.command("verify-log")
            assert result.returncode == 1, name
            assert "TAMPERED" in result.stderr, name
            await conn.execute(f"DELETE FROM {log}; INSERT INTO {log} SELECT * FROM pristine")
            assert registry_process.command("verify-log").returncode == 0, f"restored after {name}"
    finally:
        await conn.close()


async def test_verify_log_catches_a_suffix_rewritten_with_its_hashes_against_the_signed_checkpoint(
    registry_process, registry
):
    registry_process.env["MODELOPS_REGISTRY_CHECKPOINT_EVERY_S"] = "0.2"
    await registry_process.start()
    for _ in range(3):
        await verdict(registry_process.client, (await registry.submitter.submit()).artifact_id)
    schema = registry_process.env["MODELOPS_REGISTRY_SCHEMA"]
    dsn = registry.settings.database_url.get_secret_value()
    head = await _count(dsn, schema, "SELECT seq FROM {schema}.event_log_head")
    store = open_store(registry.settings.store_url, registry.settings)
    async with asyncio.timeout(WAIT_S):  # the registry signs its head and writes it outside the database
        while True:
            with contextlib.suppress(ObjectNotFound):
                if json.loads(await store.get(f"{prefix_of(schema)}/latest.json"))["record"]["seq"] == head:
                    break
            await asyncio.sleep(0.1)
    registry_process.kill()
    assert registry_process.command("verify-log").returncode == 0

    # Whoever can write the database rewrites the last event and recomputes its hash and the head: the chain holds.
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(f"SELECT prev_hash, canonical FROM {schema}.event_log WHERE seq = $1", head)
        forged = bytes(row["canonical"]) + b" "
        new_hash = chain_hash(row["prev_hash"], forged)
        await conn.execute(
            f"UPDATE {schema}.event_log SET canonical = $2, hash = $3 WHERE seq = $1", head, forged, new_hash
        )
        await conn.execute(f"UPDATE {schema}.event_log_head SET hash = $1", new_hash)
    finally:
        await conn.close()
    result = registry_process.command("verify-log")
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"seq {head}: its hash differs from the signed checkpoint" in result.stderr


async def test_p256_bundle_verifies_with_the_openssf_model_signing_tool(registry_process, registry, tmp_path):
    await registry_process.start()
    submission = await registry.submitter.submit()
    await verdict(registry_process.client, submission.artifact_id)
    client = registry_process.client
    downloaded = tmp_path / "artifact"
    for entry in (await client.get(f"/v1/artifacts/{submission.artifact_id}/files")).json():
        target = downloaded / entry["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((await client.get(f"/v1/artifacts/{submission.artifact_id}/files/{entry['path']}")).content)
    bundle = tmp_path / "bundle.sigstore.json"
    bundle.write_text(json.dumps((await client.get(f"/v1/artifacts/{submission.artifact_id}/bundle")).json()))
    key_id = (await client.get(f"/v1/artifacts/{submission.artifact_id}")).json()["key_id"]
    key = next(k for k in (await client.get("/v1/keys")).json() if k["key_id"] == key_id)
    assert key["algorithm"] == "ecdsa-p256"
    pem = tmp_path / "key.pem"
    pem.write_text(key["pem"])

    tool = str(Path(sys.executable).with_name("model_signing"))  # installed beside this interpreter (dev dependency)
    command = [tool, "verify", "key", "--signature", str(bundle), "--public_key", str(pem), str(downloaded)]
    ok = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stdout + ok.stderr

    weights = downloaded / "model.safetensors"
    weights.write_bytes(bytes([weights.read_bytes()[0] ^ 1]) + weights.read_bytes()[1:])
    tampered = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert tampered.returncode != 0
