"""The topic catalog is the single source of truth: every message type has exactly one topic."""

import pytest
from modelops_contracts import MESSAGE_TYPES, TOPICS, all_topic_names, topic_of
from modelops_contracts.asyncapi import build_document


def test_every_message_type_travels_on_exactly_one_topic():
    for message_type, model in MESSAGE_TYPES.items():
        carriers = [t.name for t in TOPICS if model in t.messages]
        assert len(carriers) == 1, (message_type, carriers)
        assert topic_of(model).name == carriers[0]


def test_topic_names_are_unique_versioned_and_partitioned():
    names = [t.name for t in TOPICS]
    assert len(names) == len(set(names))
    for topic in TOPICS:
        assert topic.name.endswith(".v1")
        assert topic.partitions >= 1
        assert topic.producers
        assert topic.consumers


def test_subject_field_exists_on_every_model():
    for model in MESSAGE_TYPES.values():
        assert model.subject_field in model.model_fields, model


def test_dead_letter_topics_are_listed_with_one_partition():
    listed = dict(all_topic_names())
    for topic in TOPICS:
        assert listed[topic.name] == topic.partitions
        assert listed[topic.dlq] == 1


def test_asyncapi_document_covers_the_catalog():
    document = build_document()
    assert document["asyncapi"] == "3.0.0"
    addresses = {c["address"] for c in document["channels"].values()}
    assert addresses == {name for name, _ in all_topic_names()}
    message_names = {m["name"] for m in document["components"]["messages"].values()}
    assert message_names == set(MESSAGE_TYPES)


def test_unknown_message_type_has_no_topic():
    class NotAMessage:
        type = "modelops.unknown.v1"

    with pytest.raises(LookupError):
        topic_of(NotAMessage)  # type: ignore[arg-type]
