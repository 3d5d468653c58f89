"""The CloudEvents envelope: binary-mode headers, round trip, and what counts as poison."""

from datetime import UTC, datetime

import pytest
from modelops_contracts import EnvelopeError, Ping, TrainingProgressed, decode, encode, new_envelope

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def _ping() -> Ping:
    return Ping(ping_id="p-1", sent_at=datetime(2026, 1, 1, tzinfo=UTC), payload="hello")


def test_binary_mode_headers_key_and_body():
    message = _ping()
    envelope = new_envelope(message, source="/services/test", correlation_id="job-9")
    record = encode(message, envelope, trace_headers={"traceparent": TRACEPARENT})

    assert record.key == b"p-1"
    assert record.headers["ce_specversion"] == "1.0"
    assert record.headers["ce_type"] == "modelops.diagnostics.ping.v1"
    assert record.headers["ce_source"] == "/services/test"
    assert record.headers["ce_subject"] == "p-1"
    assert record.headers["ce_id"] == envelope.id
    assert record.headers["content-type"] == "application/json"
    assert record.headers["correlation_id"] == "job-9"
    assert record.headers["traceparent"] == TRACEPARENT
    assert "causation_id" not in record.headers
    assert Ping.model_validate_json(record.value) == message


def test_round_trip_preserves_envelope_and_body():
    message = _ping()
    envelope = new_envelope(message, source="/services/test")
    record = encode(message, envelope)

    decoded_envelope, body = decode(record.key, record.value, record.headers)

    assert decoded_envelope == envelope
    assert body == message


def test_causation_and_correlation_follow_the_causing_event():
    cause = new_envelope(_ping(), source="/services/a", correlation_id="job-1")
    effect = TrainingProgressed(
        job_id="job-1", step=1, total_steps=2, loss=1.0, learning_rate=1e-4, tokens_per_second=1, eta_seconds=1
    )

    envelope = new_envelope(effect, source="/services/b", causation=cause)

    assert envelope.causation_id == cause.id
    assert envelope.correlation_id == "job-1"
    assert envelope.subject == "job-1"


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda h, v: ({k: x for k, x in h.items() if k != "ce_type"}, v), "MissingRequiredFields"),
        (lambda h, v: ({**h, "ce_type": "modelops.nope.v1"}, v), "unknown message type"),
        (lambda h, v: (h, b"{not json"), "ValidationError"),
        (lambda h, v: (h, b'{"ping_id": 3}'), "ValidationError"),
    ],
    ids=["missing-type", "unknown-type", "not-json", "wrong-body"],
)
def test_poison_records_raise_envelope_error(mutate, reason):
    message = _ping()
    record = encode(message, new_envelope(message, source="/services/test"))
    headers, value = mutate(record.headers, record.value)

    with pytest.raises(EnvelopeError, match=reason):
        decode(record.key, value, headers)


def test_unknown_fields_are_ignored_for_additive_evolution():
    message = _ping()
    record = encode(message, new_envelope(message, source="/services/test"))
    newer_body = record.value[:-1] + b',"added_in_a_later_release":1}'

    _, body = decode(record.key, newer_body, record.headers)

    assert body == message
