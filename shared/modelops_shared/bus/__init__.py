"""The Kafka bus: broker factory, publishing, idempotent consumers with retry and DLQ, transactional outbox."""

from .broker import make_broker
from .consumer import Handler, IdempotentConsumer, MessageContext, PermanentError
from .outbox import OutboxRelay, enqueue
from .publisher import Bus
from .topics import ensure_topics

__all__ = [
    "Bus",
    "Handler",
    "IdempotentConsumer",
    "MessageContext",
    "OutboxRelay",
    "PermanentError",
    "enqueue",
    "ensure_topics",
    "make_broker",
]
