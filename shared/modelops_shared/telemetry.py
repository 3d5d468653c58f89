"""Telemetry: JSON logs that carry trace ids, OpenTelemetry tracing, and the bus metrics FastStream lacks."""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar

from opentelemetry import propagate, trace
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from prometheus_client import Counter, Gauge
from pythonjsonlogger.json import JsonFormatter

from .settings import Settings

REQUEST_ID = "X-Request-ID"  # the header that carries it between services
request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

MESSAGES_DEAD_LETTERED = Counter(
    "modelops_messages_dead_lettered_total",
    "Messages parked on a dead-letter topic after failing for good",
    ["topic", "consumer"],
)
MESSAGES_DUPLICATE = Counter(
    "modelops_messages_duplicate_total",
    "Redelivered messages skipped because their effect was already committed",
    ["topic", "consumer"],
)
MESSAGES_RELAYED = Counter(
    "modelops_outbox_published_total",
    "Messages the outbox relay published (acknowledged by the broker)",
    ["topic"],
)
CONSUMER_LAG = Gauge(
    "modelops_consumer_lag",
    "Messages behind the partition's high watermark, as seen by the last consumed message",
    ["topic", "partition", "consumer"],
)


class _TraceContextFilter(logging.Filter):
    """Stamps every record with the current trace/span id and request id, so logs join traces."""

    def filter(self, record: logging.LogRecord) -> bool:
        span_context = trace.get_current_span().get_span_context()
        record.trace_id = format(span_context.trace_id, "032x") if span_context.is_valid else None
        record.span_id = format(span_context.span_id, "016x") if span_context.is_valid else None
        record.request_id = request_id_var.get()
        return True


def configure_logging(settings: Settings) -> None:
    """One JSON object per line on stderr, at the configured level; with an OTLP endpoint, each record is also
    exported over OTLP (to `…/v1/logs` beside `…/v1/traces`) carrying its trace and span ids, for Loki."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter(
            "{asctime}{levelname}{name}{message}",
            style="{",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            static_fields={"service": settings.service_name},
        )
    )
    handler.addFilter(_TraceContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler, *_otlp_log_handlers(settings)]
    root.setLevel(settings.log_level.upper())
    # httpx logs every request it sends at INFO. Servers log no access lines (uvicorn's are off), nor do clients:
    # a JSON line and an OTLP record per registry lookup were 6% of a loaded gateway's time (its span stays).
    logging.getLogger("httpx").setLevel(max(root.level, logging.WARNING))


def _otlp_log_handlers(settings: Settings) -> list[logging.Handler]:
    if not settings.otlp_endpoint:
        return []
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

    provider = LoggerProvider(resource=Resource.create({"service.name": settings.service_name}))
    endpoint = settings.otlp_endpoint.removesuffix("/v1/traces") + "/v1/logs"
    provider.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter(endpoint=endpoint)))
    return [LoggingHandler(logger_provider=provider)]


def configure_tracing(settings: Settings) -> TracerProvider:
    """Install the process's tracer provider; spans are exported over OTLP/HTTP when an endpoint is set."""
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        return current  # a process gets one provider; tests and re-created apps reuse it
    ratio = settings.trace_sample_ratio
    if ratio is None:
        ratio = 1.0 if settings.otlp_endpoint else 0.0
    # Unsampled spans still get ids and still cross Kafka in `traceparent` (logs keep their trace ids), but
    # cost next to nothing: recording spans that no exporter will ship doubled the bus round trip.
    provider = TracerProvider(
        resource=Resource.create({"service.name": settings.service_name}),
        sampler=ParentBased(TraceIdRatioBased(ratio)),
    )
    if settings.otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=settings.otlp_endpoint)))
    trace.set_tracer_provider(provider)
    # Every httpx call a service makes carries `traceparent` (the gateway's relays, the registry lookups, the
    # trainer's uploads), so the server it calls continues the same trace.
    HTTPXClientInstrumentor().instrument(tracer_provider=provider)
    return provider


def current_trace_headers() -> dict[str, str]:
    """W3C `traceparent`/`tracestate` for the current context (empty outside a span)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier
