"""Drain before stopping: the embedded broker (tansu) keeps messages in memory, so whatever was published but not yet
consumed when it stops is gone. `modelops-stack down` first waits, bounded, until the stack is quiet — every outbox
empty and every consumer group of the running services caught up — and reports what was still in flight if it gives
up. Staged outbox rows are never lost (they live in PostgreSQL and leave after the next start); this is about what
has already left them."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

import asyncpg
from modelops_contracts import all_topic_names

from ..bus.access import KafkaAccess
from ..bus.incarnations import ADMIN_TIMEOUT_S
from ..bus.inspection import committed_offsets, lag, partition_offsets
from ..settings import Settings

DRAIN_TIMEOUT_S = 60.0
POLL_S = 0.25
QUIET_CHECKS = 2  # a relay may publish a row just after its outbox was counted: quiet twice in a row is quiet


@dataclass
class Backlog:
    """What is in flight: outbox rows not yet published, and messages a consumer group has not yet consumed."""

    outbox: dict[str, int] = field(default_factory=dict)  # schema → rows
    lag: dict[tuple[str, str, int], int] = field(default_factory=dict)  # (group, topic, partition) → messages

    def __bool__(self) -> bool:
        return bool(self.outbox or self.lag)

    def lines(self) -> list[str]:
        return [f"outbox of {schema}: {rows} message(s) not yet published" for schema, rows in self.outbox.items()] + [
            f"group {group}: {topic}[{partition}] {behind} message(s) not yet consumed"
            for (group, topic, partition), behind in sorted(self.lag.items())
        ]


async def drain(settings: Settings, schemas: Sequence[str], timeout_s: float = DRAIN_TIMEOUT_S) -> Backlog:
    """Wait until the services owning `schemas` are quiet; returns the backlog left (empty when drained)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    quiet = 0
    conn = await asyncpg.connect(settings.database_url.get_secret_value(), timeout=ADMIN_TIMEOUT_S)
    try:
        # The running services migrated their schemas when they started: which tables exist does not change here.
        outboxes = await _schemas_with(conn, schemas, "outbox")
        readers = await _schemas_with(conn, schemas, "topic_incarnations")
        while True:
            left = await backlog(conn, KafkaAccess.of(settings), outboxes, readers)
            quiet = 0 if left else quiet + 1
            if quiet >= QUIET_CHECKS or (left and loop.time() > deadline):
                return left
            await asyncio.sleep(POLL_S)
    finally:
        await conn.close()


async def backlog(
    conn: asyncpg.Connection, kafka: KafkaAccess, outboxes: Sequence[str], readers: Sequence[str]
) -> Backlog:
    """One look: the outboxes first, then the groups of the `readers` schemas, so that a row published in between
    shows up as lag."""
    result = Backlog()
    reads: set[tuple[str, str]] = set()
    for schema in outboxes:
        rows = await conn.fetchval(f'SELECT count(*) FROM "{schema}".outbox')
        if rows:
            result.outbox[schema] = rows
    for schema in readers:
        found = await conn.fetch(f'SELECT DISTINCT consumer, topic FROM "{schema}".topic_incarnations')
        reads.update((row["consumer"], row["topic"]) for row in found)
    result.lag = await _lag(kafka, reads)
    return result


async def _schemas_with(conn: asyncpg.Connection, schemas: Sequence[str], table: str) -> list[str]:
    rows = await conn.fetch(
        "SELECT table_schema FROM information_schema.tables WHERE table_name = $1 AND table_schema = any($2::text[])",
        table,
        list(schemas),
    )
    return [row["table_schema"] for row in rows]


async def _lag(kafka: KafkaAccess, reads: Collection[tuple[str, str]]) -> dict[tuple[str, str, int], int]:
    """Messages each group has not consumed yet in each partition of the catalog topics it reads."""
    partitions = dict(all_topic_names())
    topics = {topic for _, topic in reads if topic in partitions}
    offsets = await partition_offsets(kafka, [(topic, p) for topic in topics for p in range(partitions[topic])])
    behind: dict[tuple[str, str, int], int] = {}
    for group in sorted({group for group, topic in reads if topic in topics}):
        mine = [key for key in offsets if (group, key[0]) in reads]
        committed = await committed_offsets(kafka, group, mine)
        for topic, partition in mine:
            if messages := lag(committed.get((topic, partition)), offsets[(topic, partition)]):
                behind[(group, topic, partition)] = messages
    return behind
