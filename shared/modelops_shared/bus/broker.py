"""FastStream KafkaBroker factory: tracing across Kafka headers and Prometheus bus metrics built in."""

from __future__ import annotations

from functools import cache

from faststream.kafka import KafkaBroker
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from prometheus_client import REGISTRY

from ..settings import Settings
from .access import KafkaAccess

# aiokafka's default batch (16 KiB) holds about 35 enveloped messages; every send that finds its batch full waits for a
# drain and all of them are woken by each one, so a burst of sends spins (47 tries a message at 2,000 in flight).
PRODUCER_BATCH_BYTES = 512 * 1024


@cache
def _prometheus_middleware(app_name: str) -> KafkaPrometheusMiddleware:
    # Its collectors register once per process registry; every broker in the process shares them.
    return KafkaPrometheusMiddleware(registry=REGISTRY, app_name=app_name, metrics_prefix="modelops")


def make_broker(settings: Settings) -> KafkaBroker:
    """A broker whose publishes carry W3C trace context and whose consumers continue it.

    `acks="all"` because an event the bus lost is a state change nobody hears about.
    """
    kafka = KafkaAccess.of(settings)
    return KafkaBroker(
        kafka.bootstrap,
        security=kafka.faststream(),
        client_id=settings.service_name,
        acks="all",
        max_batch_size=PRODUCER_BATCH_BYTES,
        middlewares=[KafkaTelemetryMiddleware(), _prometheus_middleware(settings.service_name)],
        logger=None,
    )
