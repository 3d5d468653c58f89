"""What the job machinery needs to know of a kind of job: its commands topic, its start and cancel commands, and how
its failed and cancelled events are made; plus what a run returns and how it is told to stop."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from modelops_contracts import JobStatus, Message
from modelops_contracts.catalog import Topic

log = logging.getLogger(__name__)


class JobCommand(Protocol):
    job_id: str


class CancelCommand(Protocol):
    job_id: str
    requested_by: str
    reason: str


class Transient(Exception):
    """Infrastructure failed (registry, store, broker unreachable): the job is retried, not failed."""


class StopSignal:
    """Set from the event loop (a cancel, a lost partition, shutdown), read by the job's thread between steps."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reason: str | None = None
        self.detail = ""

    def cancel(self, detail: str) -> None:
        with self._lock:
            if self._reason is None:
                self._reason, self.detail = "cancelled", detail

    def hand_off(self) -> None:
        with self._lock:
            if self._reason is None:
                self._reason = "handed_off"

    def reason(self) -> str | None:
        with self._lock:
            return self._reason


@dataclass
class Outcome:
    """How a job ended here, and what the ledger keeps of it (`record`). No status: it was handed off, and another
    worker (or this one, after a restart) finishes it; nothing is recorded."""

    status: JobStatus | None
    events: list[Message] = field(default_factory=list)
    reason: str | None = None
    record: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class JobCommands:
    """One kind of job: the topic of its commands, which of them starts and which cancels a job, and its events."""

    topic: Topic
    start: type[Message]
    cancel: type[Message]
    failed_event: Callable[[str, str, str], Message]  # (job id, error type, reason)
    cancelled_event: Callable[[str, str], Message]  # (job id, reason)

    @property
    def kind(self) -> str:
        """The kind of job, as metrics label it: the topic's first word (`training.commands.v1` → training)."""
        return self.topic.name.split(".", 1)[0]

    def failed(self, job_id: str, error_type: str, reason: str) -> Outcome:
        log.warning("job %s failed (%s): %s", job_id, error_type, reason)
        return Outcome(JobStatus.FAILED, [self.failed_event(job_id, error_type, reason)], reason=reason)

    def cancelled(self, job_id: str, reason: str, **record: Any) -> Outcome:
        return Outcome(JobStatus.CANCELLED, [self.cancelled_event(job_id, reason)], reason=reason, record=record)
