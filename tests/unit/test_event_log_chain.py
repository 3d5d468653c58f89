"""The event log's hash chain and canonical form, without a database."""

from datetime import UTC, datetime

from modelops_contracts import Ping, new_envelope
from modelops_registry.store.eventlog import GENESIS_HASH, canonical_event, chain_hash, parse_event


def _event(payload: str = "x"):
    message = Ping(ping_id="p", sent_at=datetime(2026, 1, 1, tzinfo=UTC), payload=payload)
    return new_envelope(message, source="/services/test"), message


def test_canonical_form_round_trips_and_is_stable():
    envelope, message = _event()
    canonical = canonical_event(envelope, message)
    assert canonical == canonical_event(*parse_event(canonical))
    assert parse_event(canonical) == (envelope, message)


def test_each_hash_commits_to_the_previous_one_and_the_content():
    first, second = canonical_event(*_event("a")), canonical_event(*_event("b"))
    h1 = chain_hash(GENESIS_HASH, first)
    h2 = chain_hash(h1, second)
    assert len(h2) == 64
    assert chain_hash(GENESIS_HASH, second) != h1  # other content, other hash
    assert chain_hash(chain_hash(GENESIS_HASH, second), first) != h2  # other order, other head
