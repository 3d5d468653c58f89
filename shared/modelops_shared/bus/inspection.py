"""What the broker can say about its topics and consumer groups: partition offsets, the groups that exist, what
each has committed and how far behind the end it is. For operators (the console's topic pages) and for
`modelops-stack down`, which waits for the groups to catch up."""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from dataclasses import dataclass

from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import OffsetSpec  # type: ignore[attr-defined]  # its stub omits it

from .access import KafkaAccess
from .incarnations import ADMIN_TIMEOUT_S, admin_client

Partition = tuple[str, int]  # (topic, partition)


@dataclass(frozen=True)
class Offsets:
    """A partition's first and next offsets: it holds `latest - earliest` messages."""

    earliest: int
    latest: int


async def partition_offsets(kafka: KafkaAccess, partitions: Collection[Partition]) -> dict[Partition, Offsets]:
    """The first and next offset of each partition."""
    if not partitions:
        return {}
    wanted = [TopicPartition(topic, p) for topic, p in partitions]
    latest = await _offsets(kafka, wanted, OffsetSpec.latest())  # type: ignore[no-untyped-call]
    earliest = await _offsets(kafka, wanted, OffsetSpec.earliest())  # type: ignore[no-untyped-call]
    return {key: Offsets(earliest[key], latest[key]) for key in latest}


async def consumer_groups(kafka: KafkaAccess) -> dict[str, str]:
    """Every consumer group the broker knows, with its state (Stable, Empty, …)."""
    future = admin_client(kafka).list_consumer_groups(request_timeout=ADMIN_TIMEOUT_S)
    listed = await asyncio.wrap_future(future)
    return {group.group_id: _state_name(group.state) for group in listed.valid}


async def committed_offsets(
    kafka: KafkaAccess, group: str, partitions: Collection[Partition] | None = None
) -> dict[Partition, int]:
    """What `group` has committed: on `partitions`, or on every partition it ever committed when None. A partition
    it has not committed on is left out."""
    wanted = None if partitions is None else [TopicPartition(topic, p) for topic, p in partitions]
    request = [ConsumerGroupTopicPartitions(group, wanted)]
    future = admin_client(kafka).list_consumer_group_offsets(request, request_timeout=ADMIN_TIMEOUT_S)[group]
    committed = await asyncio.wrap_future(future)
    return {(tp.topic, tp.partition): tp.offset for tp in committed.topic_partitions if tp.offset >= 0}


def lag(committed: int | None, offsets: Offsets) -> int:
    """Messages a group has yet to consume in a partition: all there is when it committed nothing."""
    start = offsets.earliest if committed is None else max(committed, offsets.earliest)
    return max(0, offsets.latest - start)


async def _offsets(kafka: KafkaAccess, partitions: list[TopicPartition], spec: OffsetSpec) -> dict[Partition, int]:
    futures = admin_client(kafka).list_offsets({tp: spec for tp in partitions}, request_timeout=ADMIN_TIMEOUT_S)
    results = await asyncio.gather(*(asyncio.wrap_future(future) for future in futures.values()))
    return {(tp.topic, tp.partition): info.offset for tp, info in zip(futures, results, strict=True)}


def _state_name(state: object) -> str:
    name = getattr(state, "name", str(state))
    return str(name).replace("_", " ").title().replace(" ", "")
