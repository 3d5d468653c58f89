"""Canonical forms: our fast RFC 8785 serialisation (signatures, state digests) gives exactly rfc8785's bytes (or
its errors), and the event log's canonical bytes stay what existing chains hashed."""

from datetime import UTC, datetime

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st
from modelops_contracts import Envelope, Ping, Stage
from modelops_registry.store.eventlog import canonical_event
from modelops_shared.signing.canonical import canonical_json

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**53 - 3, max_value=2**53 + 3).map(lambda n: n * (-1) ** (n % 2))
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
    | st.sampled_from(["\U0001f600", "\ufb01", '\x00\x1f\x7f\u2028"\\'])
)
KEYS = st.text() | st.sampled_from(["\ufb01", "\U0001f600", "a", "é"])
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner) | st.dictionaries(KEYS, inner), max_leaves=30)


def _expect_same(value: object) -> None:
    try:
        expected = rfc8785.dumps(value)
    except rfc8785.CanonicalizationError as error:
        with pytest.raises(type(error)):
            canonical_json(value)
    else:
        assert canonical_json(value) == expected


@settings(max_examples=500)
@given(VALUES)
def test_same_bytes_as_rfc8785(value: object) -> None:
    _expect_same(value)


@pytest.mark.parametrize(
    "value",
    [
        1.0,
        -0.0,
        1e21,
        {"m": 1e-7},
        [2**53 - 1, -(2**53) + 1],
        [2**53],
        {"\ufb01": 1, "\U0001f600": 2},  # code point order and UTF-16 order disagree
        {"s": "\ud800"},  # a lone surrogate is not UTF-8
        {"n": float("nan")},
        {"t": object()},
        {1: "a"},  # keys must be strings
        ("a", 1.5, {"b": None}),  # a tuple, and a str subclass: what rfc8785 accepts beyond plain JSON
        [Stage.PROD],
    ],
)
def test_edge_cases(value: object) -> None:
    _expect_same(value)


def test_event_log_canonical_bytes_never_change() -> None:
    """The chain hashes these bytes as stored: any change to their form breaks every existing log."""
    message = Ping(ping_id="p-1", sent_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), payload='é \U0001f600 "q" \n')
    envelope = Envelope(
        id="e-1",
        type=Ping.type,
        source="/services/test",
        subject="p-1",
        time=datetime(2026, 1, 2, 3, 4, 6, tzinfo=UTC),
        correlation_id="c-1",
    )
    assert (
        canonical_event(envelope, message)
        == (
            '{"causation_id":null,"correlation_id":"c-1","data":{"payload":"é \U0001f600 \\"q\\" \\n","ping_id":"p-1",'
            '"sent_at":"2026-01-02T03:04:05Z"},"datacontenttype":"application/json","id":"e-1","source":"/services/test",'
            '"specversion":"1.0","subject":"p-1","time":"2026-01-02T03:04:06Z","type":"modelops.diagnostics.ping.v1"}'
        ).encode()
    )
