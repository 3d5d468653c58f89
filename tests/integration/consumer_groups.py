"""Consumer-group offsets for tests that start a real worker on a session's shared broker."""

from aiokafka import AIOKafkaConsumer, TopicPartition
from modelops_contracts import Topic
from modelops_shared.settings import Settings


async def skip_history(settings: Settings, group: str, topic: Topic) -> None:
    """Commit `group`'s offsets at the end of `topic`, so that a worker started now in that group leaves alone what
    earlier tests published there (commands for stand-in models or adapters a real worker cannot load)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic.name, p) for p in range(topic.partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_end(*partitions)
        await consumer.commit({p: await consumer.position(p) for p in partitions})
    finally:
        await consumer.stop()
