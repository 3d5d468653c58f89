"""The console's view of Kafka itself, for operators: every catalog topic with its partitions' offsets, every
consumer group with its lag, and the latest messages of a topic, headers and payload (bounded), dead-letter topics
included. Read straight from the broker, so it shows what is there now."""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from modelops_contracts import TOPICS, all_topic_names
from modelops_shared.bus.access import KafkaAccess
from modelops_shared.bus.inspection import committed_offsets, consumer_groups, lag, partition_offsets

from .domain import trace_id_of

PAYLOAD_PREVIEW_BYTES = 16 * 1024
READ_TIMEOUT_S = 3.0
DESCRIPTIONS = {topic.name: topic for topic in TOPICS}


@dataclass(frozen=True)
class PartitionState:
    partition: int
    earliest: int
    latest: int


@dataclass(frozen=True)
class TopicState:
    name: str
    partitions: list[PartitionState]
    description: str
    producers: list[str]
    consumers: list[str]
    dead_letter_topic: bool
    messages: int  # held now, over every partition


@dataclass(frozen=True)
class GroupPartition:
    topic: str
    partition: int
    committed: int | None
    latest: int
    lag: int


@dataclass(frozen=True)
class GroupState:
    group: str
    state: str
    partitions: list[GroupPartition]
    lag: int  # over every partition


@dataclass(frozen=True)
class KafkaMessage:
    topic: str
    partition: int
    offset: int
    timestamp: datetime
    key: str | None
    headers: dict[str, str]
    trace_id: str | None
    payload: Any  # the JSON value, or the text, or {"base64": ...} for bytes that are neither
    payload_bytes: int
    truncated: bool


async def topics(kafka: KafkaAccess) -> list[TopicState]:
    """Every catalog topic and dead-letter topic, in catalog order, with each partition's offsets."""
    names = list(all_topic_names())
    offsets = await partition_offsets(kafka, [(name, p) for name, count in names for p in range(count)])
    states = []
    for name, count in names:
        topic = DESCRIPTIONS.get(name.removesuffix(".dlq"))
        dead = name.endswith(".dlq")
        partitions = [PartitionState(p, offsets[(name, p)].earliest, offsets[(name, p)].latest) for p in range(count)]
        states.append(
            TopicState(
                name=name,
                partitions=partitions,
                description=("Messages its consumers could not handle. " if dead else "")
                + (topic.description if topic else ""),
                producers=list(topic.consumers if dead else topic.producers) if topic else [],
                consumers=[] if dead else list(topic.consumers) if topic else [],
                dead_letter_topic=dead,
                messages=sum(p.latest - p.earliest for p in partitions),
            )
        )
    return states


async def groups(kafka: KafkaAccess) -> list[GroupState]:
    """Every consumer group with the partitions it committed on and how far behind each one's end it is."""
    listed = await consumer_groups(kafka)
    committed = dict(
        zip(listed, await asyncio.gather(*(committed_offsets(kafka, group) for group in listed)), strict=True)
    )
    offsets = await partition_offsets(kafka, {key for positions in committed.values() for key in positions})
    states = []
    for group, state in sorted(listed.items()):
        partitions = [
            GroupPartition(
                topic, partition, offset, offsets[(topic, partition)].latest, lag(offset, offsets[(topic, partition)])
            )
            for (topic, partition), offset in sorted(committed[group].items())
            if (topic, partition) in offsets
        ]
        states.append(GroupState(group, state, partitions, sum(p.lag for p in partitions)))
    return states


async def recent_messages(
    kafka: KafkaAccess, topic: str, limit: int, partition: int | None = None
) -> list[KafkaMessage]:
    """The latest `limit` messages of each partition of `topic` (or of one), newest first across partitions."""
    count = dict(all_topic_names())[topic]
    chosen = [partition] if partition is not None else list(range(count))
    offsets = await partition_offsets(kafka, [(topic, p) for p in chosen])
    reader = AIOKafkaConsumer(**kafka.aiokafka(), enable_auto_commit=False, group_id=None)
    wanted = {TopicPartition(topic, p): offsets[(topic, p)] for p in chosen}
    found: list[KafkaMessage] = []
    await reader.start()
    try:
        reader.assign(list(wanted))
        for tp, span in wanted.items():
            reader.seek(tp, max(span.earliest, span.latest - limit))
        pending = {tp for tp, span in wanted.items() if span.latest > span.earliest}
        # A deadline rather than asyncio.timeout: a cancellation inside Starlette's task groups ends the request
        # without an answer. What was read by then is answered.
        deadline = asyncio.get_running_loop().time() + READ_TIMEOUT_S
        while pending and asyncio.get_running_loop().time() < deadline:
            batch = await reader.getmany(*pending, timeout_ms=200)
            for tp, records in batch.items():
                found.extend(_message(record) for record in records if record.offset < wanted[tp].latest)
            # By position, not by the last record's offset: a partition may end in offsets that hold no record.
            pending = {tp for tp in pending if await reader.position(tp) < wanted[tp].latest}
    finally:
        await _stopped(reader)
    return sorted(found, key=lambda m: (m.timestamp, m.offset), reverse=True)[:limit]


async def _stopped(reader: AIOKafkaConsumer) -> None:
    """Stop a group-less consumer: aiokafka cancels its own committed-offsets task on stop and lets that
    CancelledError out, which would end the request unanswered. One aimed at this task is passed on."""
    try:
        await reader.stop()
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise


def _message(record: Any) -> KafkaMessage:
    headers = {name: value.decode(errors="replace") for name, value in record.headers}
    value: bytes = record.value or b""
    truncated = len(value) > PAYLOAD_PREVIEW_BYTES
    return KafkaMessage(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        timestamp=datetime.fromtimestamp(record.timestamp / 1000, UTC),
        key=record.key.decode(errors="replace") if record.key else None,
        headers=headers,
        trace_id=trace_id_of(headers.get("traceparent")),
        payload=value[:PAYLOAD_PREVIEW_BYTES].decode(errors="replace") if truncated else _payload(value),
        payload_bytes=len(value),
        truncated=truncated,
    )


def _payload(value: bytes) -> Any:
    """JSON as its value, other text as text, anything else as base64."""
    try:
        return json.loads(value)
    except ValueError:
        pass
    try:
        return value.decode()
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(value).decode()}
