"""Base class of every command and event body, and the registry of their CloudEvents types."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

MESSAGE_TYPES: dict[str, type[Message]] = {}


class Message(BaseModel):
    """A command or event body. Subclasses name their CloudEvents `type` and the field that keys them.

    Unknown fields are ignored so that additive changes inside a `v1` topic never break an older consumer.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    type: ClassVar[str]
    subject_field: ClassVar[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        message_type = cls.__dict__.get("type")
        if message_type is None:
            return
        if message_type in MESSAGE_TYPES:
            raise TypeError(f"duplicate message type {message_type!r}")
        MESSAGE_TYPES[message_type] = cls

    def subject(self) -> str:
        """The aggregate id: the Kafka key and the CloudEvents `subject`."""
        return str(getattr(self, self.subject_field))


def message_class(message_type: str) -> type[Message]:
    """The model registered for a CloudEvents type; KeyError when unknown."""
    return MESSAGE_TYPES[message_type]
