"""Where a consumer group with no history starts: at the end of its topic, for consumers whose past is known from
elsewhere (an inference replica learns what to serve from the registry). Committed before the group's consumer
joins, so nothing published after this call is missed, unlike `auto_offset_reset="latest"`, which resolves the end
only once partitions are assigned."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, TopicPartition
from modelops_contracts import Topic

from .access import KafkaAccess
from .topics import ensure_topics


async def start_new_group_at_end(kafka: KafkaAccess, group: str, topic: Topic) -> bool:
    """Commit `group`'s offsets at the end of `topic` unless it has committed any; whether it was new. The catalog's
    topics are created first (a service may start before any other has created them)."""
    await ensure_topics(kafka)
    consumer = AIOKafkaConsumer(**kafka.aiokafka(), group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic.name, p) for p in range(topic.partitions)]
        consumer.assign(partitions)  # manual assignment: committing needs it, and no group join is made
        if any([await consumer.committed(partition) is not None for partition in partitions]):
            return False
        ends = await consumer.end_offsets(partitions)
        await consumer.commit(ends)
        return True
    finally:
        await consumer.stop()
