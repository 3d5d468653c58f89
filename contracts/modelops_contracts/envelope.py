"""The CloudEvents 1.0 envelope in Kafka binary mode.

Context attributes travel as `ce_*` headers (mapped by the CloudEvents SDK's Kafka binding), the body is
the message model as JSON, the key is the aggregate id. Three more headers ride along: `traceparent`
(W3C trace context, so one trace spans a whole job), `correlation_id` (the job or request) and
`causation_id` (the event that caused this one).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from cloudevents.v1.exceptions import GenericException as CloudEventError
from cloudevents.v1.http import CloudEvent
from cloudevents.v1.kafka import KafkaMessage, from_binary, to_binary
from pydantic import BaseModel, ConfigDict, ValidationError

from .messages import Message, message_class

CONTENT_TYPE = "application/json"
CORRELATION_ID = "correlation_id"
CAUSATION_ID = "causation_id"
TRACEPARENT = "traceparent"


class EnvelopeError(ValueError):
    """A record that can never be handled: not a CloudEvent, an unknown type, or a body that fails its model."""


class Envelope(BaseModel):
    """The context of one message: CloudEvents attributes plus correlation and causation ids."""

    model_config = ConfigDict(frozen=True)

    id: str
    type: str
    source: str
    subject: str
    time: datetime
    specversion: str = "1.0"
    datacontenttype: str = CONTENT_TYPE
    correlation_id: str
    causation_id: str | None = None


@dataclass(frozen=True)
class KafkaRecord:
    """What goes on the wire: key, value and string headers (the shape FastStream publishes)."""

    key: bytes
    value: bytes
    headers: dict[str, str]


def new_envelope(
    message: Message,
    *,
    source: str,
    correlation_id: str | None = None,
    causation: Envelope | None = None,
) -> Envelope:
    """An envelope for a new message; correlation is inherited from the causing event when there is one."""
    event_id = str(uuid.uuid4())
    if correlation_id is None:
        correlation_id = causation.correlation_id if causation else message.subject()
    return Envelope(
        id=event_id,
        type=message.type,
        source=source,
        subject=message.subject(),
        time=datetime.now(UTC),
        correlation_id=correlation_id,
        causation_id=causation.id if causation else None,
    )


def encode(message: Message, envelope: Envelope, trace_headers: dict[str, str] | None = None) -> KafkaRecord:
    """Binary-mode Kafka record for `message`; `trace_headers` are the W3C propagation headers."""
    attributes = {
        "specversion": envelope.specversion,
        "id": envelope.id,
        "type": envelope.type,
        "source": envelope.source,
        "subject": envelope.subject,
        "time": envelope.time.isoformat(),
        "datacontenttype": envelope.datacontenttype,
    }
    body = message.model_dump_json().encode()
    event = CloudEvent(attributes, body)
    wire = to_binary(event, data_marshaller=lambda data: data, key_mapper=lambda _: envelope.subject)
    headers = {name: value.decode() for name, value in wire.headers.items()}
    headers[CORRELATION_ID] = envelope.correlation_id
    if envelope.causation_id:
        headers[CAUSATION_ID] = envelope.causation_id
    headers.update(trace_headers or {})
    return KafkaRecord(key=envelope.subject.encode(), value=body, headers=headers)


def decode(key: bytes | None, value: bytes, headers: dict[str, str]) -> tuple[Envelope, Message]:
    """The envelope and typed body of a record; EnvelopeError when the record can never be handled."""
    wire_headers = {name: text.encode() for name, text in headers.items()}
    try:
        event = from_binary(KafkaMessage(wire_headers, key, value), data_unmarshaller=lambda data: data)
        attributes = event.get_attributes()
        envelope = Envelope(
            **{name: attributes.get(name) for name in ("id", "type", "source", "subject", "time", "specversion")},
            datacontenttype=attributes.get("datacontenttype") or CONTENT_TYPE,
            correlation_id=headers.get(CORRELATION_ID) or attributes.get("subject"),
            causation_id=headers.get(CAUSATION_ID),
        )
        data = event.get_data()
        if not isinstance(data, bytes):
            raise EnvelopeError("record has no body")
        body = message_class(envelope.type).model_validate_json(data)
    except KeyError as error:
        raise EnvelopeError(f"unknown message type {error.args[0]!r}") from None
    except (CloudEventError, ValidationError, TypeError, ValueError) as error:
        raise EnvelopeError(f"{type(error).__name__}: {error}") from None
    return envelope, body
