"""The Kafka bus: broker factory, publishing, idempotent and tracked consumers with retry and DLQ, outbox."""

from .broker import make_broker
from .consumer import Delivery, Handler, IdempotentConsumer, MessageContext, PermanentError
from .outbox import OutboxRelay, enqueue, enqueue_many
from .publisher import Bus
from .topics import ensure_topics
from .tracked import BatchHandler, TrackedConsumer

__all__ = [
    "BatchHandler",
    "Bus",
    "Delivery",
    "Handler",
    "IdempotentConsumer",
    "MessageContext",
    "OutboxRelay",
    "PermanentError",
    "TrackedConsumer",
    "enqueue",
    "enqueue_many",
    "ensure_topics",
    "make_broker",
]
