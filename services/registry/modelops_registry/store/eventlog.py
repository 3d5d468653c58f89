"""The append-only, hash-chained event log: every event the registry consumed or decided, in the order applied.

Each row's hash is sha256(previous hash ‖ canonical bytes of the event); the head row anchors the newest hash,
so an edited, deleted, inserted or reordered row breaks the chain that `verify` walks.

The canonical bytes are compact JSON with sorted keys. They are stored, and the chain and replay read them as
stored, so they need to be deterministic, not reproducible by a third party from a parsed object — which is what
RFC 8785 adds, at ten times the cost in pure Python (the signed statements, which others verify, do use it).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from modelops_contracts import Envelope, Message, message_class

GENESIS_HASH = "0" * 64
# Built once: json.dumps with options builds an encoder per call. Its output must never change (the chain hashes it).
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_LOG_COLUMNS = ("seq", "event_id", "type", "subject", "correlation_id", "canonical", "prev_hash", "hash")


@dataclass(frozen=True)
class LoggedEvent:
    seq: int
    envelope: Envelope
    body: Message


def canonical_event(envelope: Envelope, body: Message) -> bytes:
    document: dict[str, Any] = envelope.model_dump(mode="json")
    document["data"] = body.model_dump(mode="json")
    return _CANONICAL.encode(document).encode()


def chain_hash(previous: str, canonical: bytes) -> str:
    return hashlib.sha256(bytes.fromhex(previous) + canonical).hexdigest()


def parse_event(canonical: bytes) -> tuple[Envelope, Message]:
    document = json.loads(canonical)
    data = document.pop("data")
    envelope = Envelope.model_validate(document)
    return envelope, message_class(envelope.type).model_validate(data)


async def append(conn: asyncpg.Connection, events: Sequence[tuple[Envelope, Message]]) -> list[LoggedEvent]:
    """Append in the caller's transaction, in order; events whose id is already logged (redeliveries) are skipped,
    and only the newly logged ones are returned.

    Locking the head row serialises writers, so the chain has one order whatever the number of writers.
    """
    if not events:
        return []
    head = await conn.fetchrow("SELECT seq, hash FROM event_log_head FOR UPDATE")
    known = {
        row["event_id"]
        for row in await conn.fetch(
            "SELECT event_id FROM event_log WHERE event_id = any($1::text[])", [e.id for e, _ in events]
        )
    }
    seq, previous = head["seq"], head["hash"]
    rows, logged = [], []
    for envelope, body in events:
        if envelope.id in known:
            continue
        known.add(envelope.id)
        canonical = canonical_event(envelope, body)
        digest = chain_hash(previous, canonical)
        seq += 1
        rows.append(
            (seq, envelope.id, envelope.type, envelope.subject, envelope.correlation_id, canonical, previous, digest)
        )
        logged.append(LoggedEvent(seq, envelope, body))
        previous = digest
    if rows:
        await conn.copy_records_to_table("event_log", records=rows, columns=_LOG_COLUMNS)
        await conn.execute("UPDATE event_log_head SET seq = $1, hash = $2", seq, previous)
    return logged


async def read(conn: asyncpg.Connection, *, batch: int = 2000) -> AsyncIterator[tuple[int, bytes, asyncpg.Record]]:
    """Every row in order, streamed through a server-side cursor (the caller holds a transaction)."""
    async for row in conn.cursor("SELECT * FROM event_log ORDER BY seq", prefetch=batch):
        yield row["seq"], bytes(row["canonical"]), row


async def verify(conn: asyncpg.Connection, *, limit: int = 20) -> list[str]:
    """Walk the chain; returns what is wrong (empty when the log is intact), at most `limit` findings."""
    problems: list[str] = []
    expected_seq, previous = 1, GENESIS_HASH
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        async for seq, canonical, row in read(conn):
            if seq != expected_seq:
                problems.append(f"seq {seq}: expected seq {expected_seq} (a row was deleted, inserted or renumbered)")
            if row["prev_hash"] != previous:
                problems.append(f"seq {seq}: prev_hash does not match the hash of the row before it")
            if chain_hash(row["prev_hash"], canonical) != row["hash"]:
                problems.append(f"seq {seq}: hash does not match its content (the event was edited)")
            else:
                envelope, _ = parse_event(canonical)
                if (row["event_id"], row["type"], row["subject"]) != (envelope.id, envelope.type, envelope.subject):
                    problems.append(f"seq {seq}: indexed columns disagree with the hashed event")
            expected_seq, previous = seq + 1, row["hash"]
            if len(problems) >= limit:
                return problems
        head = await conn.fetchrow("SELECT seq, hash FROM event_log_head")
    if (head["seq"], head["hash"]) != (expected_seq - 1, previous):
        problems.append(f"head says seq {head['seq']}, the log ends at {expected_seq - 1} (rows were removed or added)")
    return problems
