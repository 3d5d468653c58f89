"""Generate `contracts/asyncapi.yaml` (AsyncAPI 3.0) from the topic catalog and the message models.

Written here rather than through FastStream's generator because that one describes a broker's handler
signatures: it cannot express several CloudEvents types on one channel, the envelope headers, or the
Kafka key and partition bindings that the catalog owns.

    python -m modelops_contracts.asyncapi [--check] PATH
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from .catalog import TOPICS, Topic
from .messages import Message

KAFKA_BINDING_VERSION = "0.5.0"

_HEADERS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "CloudEvents 1.0 Kafka binary-mode attributes plus trace and causality headers.",
    "required": ["ce_specversion", "ce_id", "ce_type", "ce_source", "ce_time", "ce_subject", "correlation_id"],
    "properties": {
        "ce_specversion": {"type": "string", "const": "1.0"},
        "ce_id": {"type": "string", "description": "Unique per event; consumers deduplicate on it"},
        "ce_type": {"type": "string", "description": "e.g. modelops.training.completed.v1"},
        "ce_source": {"type": "string", "description": "/services/<name>"},
        "ce_time": {"type": "string", "format": "date-time"},
        "ce_subject": {"type": "string", "description": "Aggregate id; equals the Kafka key"},
        "content-type": {"type": "string", "const": "application/json"},
        "traceparent": {"type": "string", "description": "W3C trace context"},
        "correlation_id": {"type": "string", "description": "The job or request this event belongs to"},
        "causation_id": {"type": "string", "description": "ce_id of the event that caused this one"},
    },
}


def _channel_id(topic_name: str) -> str:
    return topic_name.replace(".", "_")


def _add_message(components: dict[str, Any], message: type[Message], topic: Topic) -> None:
    name = message.__name__
    schema = message.model_json_schema(ref_template="#/components/schemas/{model}")
    components["schemas"].update(schema.pop("$defs", {}))
    components["schemas"][name] = schema
    components["messages"][name] = {
        "name": message.type,
        "title": name,
        "summary": (message.__doc__ or name).strip().splitlines()[0],
        "contentType": "application/json",
        "headers": {"$ref": "#/components/schemas/CloudEventsHeaders"},
        "payload": {"$ref": f"#/components/schemas/{name}"},
        "bindings": {
            "kafka": {
                "key": {"type": "string", "description": topic.key},
                "bindingVersion": KAFKA_BINDING_VERSION,
            }
        },
    }


def build_document() -> dict[str, Any]:
    components: dict[str, Any] = {"schemas": {"CloudEventsHeaders": _HEADERS_SCHEMA}, "messages": {}}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for topic in TOPICS:
        channel = _channel_id(topic.name)
        for message in topic.messages:
            _add_message(components, message, topic)
        refs = {m.__name__: {"$ref": f"#/components/messages/{m.__name__}"} for m in topic.messages}
        for name, partitions, description in (
            (topic.name, topic.partitions, topic.description),
            (topic.dlq, 1, f"Dead letters of {topic.name}: original headers plus dlq_* error headers."),
        ):
            channels[_channel_id(name)] = {
                "address": name,
                "description": description,
                "messages": refs,
                "bindings": {
                    "kafka": {"topic": name, "partitions": partitions, "bindingVersion": KAFKA_BINDING_VERSION}
                },
            }
        channel_refs = [{"$ref": f"#/channels/{channel}/messages/{m.__name__}"} for m in topic.messages]
        for action, services in (("send", topic.producers), ("receive", topic.consumers)):
            for service in services:
                operations[f"{service}_{action}_{channel}"] = {
                    "action": action,
                    "channel": {"$ref": f"#/channels/{channel}"},
                    "messages": channel_refs,
                    "tags": [{"name": service}],
                }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "ModelOps event bus",
            "version": "1.0.0",
            "description": "Every Kafka topic of the platform. Generated from modelops_contracts; do not edit.",
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": components,
    }


class _NoAliasDumper(yaml.SafeDumper):
    """Writes repeated objects in full: `&id001` anchors make a spec harder to read and to diff."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def render() -> str:
    return yaml.dump(build_document(), Dumper=_NoAliasDumper, sort_keys=False, allow_unicode=True, width=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", type=Path)
    parser.add_argument("--check", action="store_true", help="fail when the file differs from the catalog")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not args.path.exists() or args.path.read_text() != text:
            print(f"{args.path} is stale: run `make contracts` and commit it", file=sys.stderr)
            return 1
        return 0
    args.path.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
