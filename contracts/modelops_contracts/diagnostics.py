"""Diagnostic messages: a ping that travels the whole bus path (smoke checks, benchmarks, probes)."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from .messages import Message


class Ping(Message):
    type: ClassVar[str] = "modelops.diagnostics.ping.v1"
    subject_field: ClassVar[str] = "ping_id"

    ping_id: str
    sent_at: datetime
    payload: str = ""
