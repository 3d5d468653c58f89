"""The Kafka bus: broker factory, publishing, idempotent and tracked consumers with retry and DLQ, outbox."""

from .broker import make_broker
from .consumer import Handler, IdempotentConsumer, MessageContext, PermanentError
from .outbox import OutboxRelay, enqueue
from .publisher import Bus
from .topics import ensure_topics
from .tracked import TrackedConsumer

__all__ = [
    "Bus",
    "Handler",
    "IdempotentConsumer",
    "MessageContext",
    "OutboxRelay",
    "PermanentError",
    "TrackedConsumer",
    "enqueue",
    "ensure_topics",
    "make_broker",
]
