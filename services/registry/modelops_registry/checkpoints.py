"""The event log's head, signed and kept outside the database: every `registry_checkpoint_every_s` the head (seq and
hash) is signed with the registry's key and written to the object store. The hash chain catches an edited, deleted
or reordered row, but not a suffix rewritten with its hashes recomputed by someone who can write the database; the
checkpoint can: `verify-log` checks that the log still holds the checkpoint's hash at its seq and reaches that far.
(Object-store versioning or object lock on `registry/<schema>/checkpoints/` keeps the checkpoints themselves out of
that writer's reach.)"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from datetime import UTC, datetime

import asyncpg
from modelops_shared.signing import KeyRing, SignatureError, sign_record, verify_record
from modelops_shared.storage import ObjectNotFound, ObjectStore

log = logging.getLogger(__name__)


def prefix_of(schema: str) -> str:
    """Where the checkpoints of the registry on `schema` go (registries of several schemas may share a store)."""
    return f"registry/{schema}/checkpoints"


async def write_checkpoint(store: ObjectStore, keys: KeyRing, schema: str, seq: int, head_hash: str) -> None:
    """Sign the head (`seq`, `head_hash`) and store it, as `<seq>.json` and as `latest.json`."""
    record = {"seq": seq, "hash": head_hash, "at": datetime.now(UTC).isoformat()}
    key_id, signature = sign_record(record, keys.active)
    data = json.dumps({"record": record, "key_id": key_id, "signature": signature}).encode()
    await store.put(f"{prefix_of(schema)}/{seq:012d}.json", data)
    await store.put(f"{prefix_of(schema)}/latest.json", data)


async def checkpointing(pool: asyncpg.Pool, store: ObjectStore, keys: KeyRing, schema: str, every_s: float) -> None:
    """A checkpoint every `every_s` when the head moved (none for an empty log), for as long as the registry runs."""
    written: int | None = None
    while True:
        await asyncio.sleep(every_s)
        try:
            head = await pool.fetchrow("SELECT seq, hash FROM event_log_head")
            if head["seq"] and head["seq"] != written:
                await write_checkpoint(store, keys, schema, head["seq"], head["hash"])
                written = head["seq"]
        except Exception:
            log.exception("writing the event log checkpoint failed")


async def check_against_checkpoint(
    conn: asyncpg.Connection, store: ObjectStore, keys: KeyRing, schema: str
) -> list[str]:
    """What the log contradicts in the latest signed checkpoint (empty when none was written yet)."""
    with contextlib.suppress(ObjectNotFound):
        checkpoint = json.loads(await store.get(f"{prefix_of(schema)}/latest.json"))
        record = checkpoint["record"]
        try:
            pem = keys.public_key(checkpoint["key_id"]).pem
            verify_record(record, checkpoint["key_id"], checkpoint["signature"], pem)
        except (KeyError, SignatureError) as error:
            return [f"the checkpoint's signature does not verify ({error})"]
        found = await conn.fetchval("SELECT hash FROM event_log WHERE seq = $1", record["seq"])
        if found is None:
            return [f"the log ends before seq {record['seq']} of its signed checkpoint (rows were removed)"]
        if found != record["hash"]:
            return [f"seq {record['seq']}: its hash differs from the signed checkpoint (the log was rewritten)"]
    return []
