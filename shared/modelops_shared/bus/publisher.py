"""The Bus: owns the service's broker and publishes messages in the CloudEvents envelope."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from modelops_contracts import Envelope, KafkaRecord, Message, encode, new_envelope, topic_of

from ..settings import Settings
from .access import KafkaAccess
from .broker import PRODUCER_BATCH_BYTES, make_broker
from .topics import ensure_topics


class Bus:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.source = f"/services/{settings.service_name}"
        self.broker = make_broker(settings)
        # For records already enveloped and traced (the outbox's): pipelined sends, without per-message middleware.
        self.kafka = KafkaAccess.of(settings)
        self._producer = AIOKafkaProducer(
            **self.kafka.aiokafka(),
            client_id=f"{settings.service_name}-relay",
            acks="all",
            max_batch_size=PRODUCER_BATCH_BYTES,
        )

    async def start(self) -> None:
        """Create missing catalog topics (a topic auto-created by a publish would get one partition),
        then start the broker and every subscriber registered on it."""
        await ensure_topics(self.kafka)
        await self.broker.start()
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()
        await self.broker.stop()

    async def ready(self, timeout: float = 2.0) -> bool:
        return await self.broker.ping(timeout=timeout)

    def consuming(self) -> bool:
        """Whether every subscriber still has a consume loop running. FastStream's loop outlives broker errors and
        handler failures (those are nacked or dead-lettered), and its supervisor starts a new loop beside one that
        crashed; a subscriber whose loops all ended was stopped or cancelled: not ready."""
        loops = [getattr(subscriber, "tasks", ()) for subscriber in self.broker.subscribers]
        return all(any(not task.done() for task in tasks) for tasks in loops if tasks)

    def envelope_for(
        self, message: Message, *, correlation_id: str | None = None, causation: Envelope | None = None
    ) -> Envelope:
        return new_envelope(message, source=self.source, correlation_id=correlation_id, causation=causation)

    async def publish(
        self, message: Message, *, correlation_id: str | None = None, causation: Envelope | None = None
    ) -> Envelope:
        """Publish on the message's catalog topic, keyed by its aggregate id; returns once the broker has it."""
        envelope = self.envelope_for(message, correlation_id=correlation_id, causation=causation)
        await self.publish_record(topic_of(message).name, encode(message, envelope))
        return envelope

    async def publish_record(self, topic: str, record: KafkaRecord) -> None:
        # The telemetry middleware adds `traceparent` for the current span on its way out.
        await self.broker.publish(record.value, topic=topic, key=record.key, headers=dict(record.headers))

    async def send_records(self, records: Sequence[tuple[str, KafkaRecord]]) -> None:
        """Send `(topic, record)`s in order and wait until the broker has acknowledged them all.

        Each send only queues the record (so per-partition order is the call order); the acknowledgements are
        awaited together, which lets the producer batch them.
        """
        acknowledgements = [
            await self._producer.send(
                topic, record.value, key=record.key, headers=[(k, v.encode()) for k, v in record.headers.items()]
            )
            for topic, record in records
        ]
        await asyncio.gather(*acknowledgements)
