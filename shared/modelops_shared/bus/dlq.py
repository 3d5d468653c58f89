"""Dead letters replayed after a fix:

    python -m modelops_shared.bus.dlq replay TOPIC [--consumer GROUP] [--dry-run]

Each record of `<TOPIC>.dlq` (optionally only those the consumer group GROUP parked) is published again to its
original topic with its original key, value and headers, the `dlq_*` ones dropped, so the consumer that failed on it
handles it again; consumers are idempotent by message id, so a replayed message takes effect at most once. What was
replayed is remembered as the committed offset of the group `dlq-replay.<TOPIC>.<GROUP or all>`: a second run
replays only what was dead-lettered since. Records are read up to the end the topic had when the run started.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition

from ..settings import Settings
from .access import KafkaAccess
from .consumer import DLQ_HEADER_PREFIX
from .publisher import Bus

READ_TIMEOUT_MS = 1000


@dataclass(frozen=True)
class Replayed:
    offset: int
    topic: str
    key: bytes | None
    error: str


async def replay(
    settings: Settings, topic: str, *, consumer: str | None = None, dry_run: bool = False
) -> list[Replayed]:
    """Re-publish the dead letters of `topic` not replayed before (of `consumer` only, when given); what was sent.
    A dry run sends nothing and remembers nothing."""
    dead_letters = TopicPartition(f"{topic}.dlq", 0)  # dead-letter topics have one partition (catalog)
    reader = AIOKafkaConsumer(
        **KafkaAccess.of(settings).aiokafka(),
        group_id=f"dlq-replay.{topic}.{consumer or 'all'}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    reader.assign([dead_letters])
    await reader.start()
    bus = Bus(settings)
    await bus.start()
    sent: list[Replayed] = []
    try:
        end = (await reader.end_offsets([dead_letters]))[dead_letters]
        while await reader.position(dead_letters) < end:
            batch = await reader.getmany(dead_letters, timeout_ms=READ_TIMEOUT_MS)
            for record in batch.get(dead_letters, []):
                if record.offset >= end:
                    break
                headers = {name: value.decode() for name, value in record.headers}
                if consumer is None or headers.get(f"{DLQ_HEADER_PREFIX}consumer") == consumer:
                    original = headers.get(f"{DLQ_HEADER_PREFIX}original_topic", topic)
                    if not dry_run:
                        kept = {
                            name: value for name, value in headers.items() if not name.startswith(DLQ_HEADER_PREFIX)
                        }
                        await bus.broker.publish(record.value, topic=original, key=record.key, headers=kept)
                    sent.append(
                        Replayed(record.offset, original, record.key, headers.get(f"{DLQ_HEADER_PREFIX}error", ""))
                    )
                if not dry_run:
                    await reader.commit({dead_letters: record.offset + 1})
    finally:
        await bus.stop()
        await reader.stop()
    return sent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m modelops_shared.bus.dlq",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    command = commands.add_parser("replay", help="re-publish dead letters to their original topic")
    command.add_argument("topic", help="the original topic, e.g. training.commands.v1")
    command.add_argument("--consumer", help="only what this consumer group dead-lettered")
    command.add_argument("--dry-run", action="store_true", help="list what would be replayed; send nothing")
    args = parser.parse_args(argv)
    sent = asyncio.run(replay(Settings(), args.topic, consumer=args.consumer, dry_run=args.dry_run))
    for letter in sent:
        key = letter.key.decode(errors="replace") if letter.key else "-"
        print(
            f"{'would replay' if args.dry_run else 'replayed'} offset {letter.offset} key {key} → {letter.topic}"
            f" (failed with: {letter.error[:120]})"
        )
    print(f"{len(sent)} dead letter(s) {'to replay' if args.dry_run else 'replayed'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
