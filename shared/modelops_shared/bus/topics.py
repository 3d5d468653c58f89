"""Create every catalog topic (and its dead-letter topic) with its partition count."""

from __future__ import annotations

import contextlib

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from modelops_contracts import all_topic_names

from .access import KafkaAccess


async def ensure_topics(kafka: KafkaAccess, replication_factor: int = 1) -> list[str]:
    """Create missing topics; returns the names created. Existing topics are left as they are."""
    admin = AIOKafkaAdminClient(**kafka.aiokafka())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(name, num_partitions=partitions, replication_factor=replication_factor)
            for name, partitions in all_topic_names()
            if name not in existing
        ]
        if missing:
            # Another starter may win the race; the topics then exist, which is all we need.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
        return [topic.name for topic in missing]
    finally:
        await admin.close()
