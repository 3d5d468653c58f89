"""A job's event stream (Server-Sent Events): its events parsed, and where to resume it with `Last-Event-ID` after a
dropped connection so no event is missed or repeated. The stream itself is `_async/events.py` and its generated twin."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

import httpx
from pydantic import BaseModel

from .errors import ApiError, ConnectionFailed
from .models import JobStatus
from .retrying import RETRY_STATUSES

# A terminal event is named after the status it leaves the job in.
TERMINAL = frozenset({JobStatus.completed, JobStatus.failed, JobStatus.cancelled})
# Longer than the gateway's keep-alive interval (15 s by default), so a silent stream means a dead connection.
STREAM_TIMEOUT = httpx.Timeout(10.0, read=60.0)


class JobEvent(BaseModel):
    """One event of a job: `id` is its position in the job's history, `data` what the worker reported."""

    id: int
    job_id: str
    type: str
    at: datetime
    data: dict[str, Any]

    @property
    def terminal(self) -> bool:
        return self.type in TERMINAL


class SseParser:
    """Lines of a text/event-stream body in, JobEvents out (keep-alive comments and other fields are skipped)."""

    def __init__(self) -> None:
        self.data: list[str] = []

    def feed(self, line: str) -> JobEvent | None:
        if line.startswith(":"):
            return None
        if line:
            name, _, value = line.partition(":")
            if name == "data":
                self.data.append(value.removeprefix(" "))
            return None
        data, self.data = self.data, []
        return JobEvent.model_validate(json.loads("\n".join(data))) if data else None


class Resumption:
    """Where a stream is, and how many reconnections in a row have failed."""

    def __init__(self, last_event_id: int | None, reconnects: int, backoff_s: float) -> None:
        self.last_event_id = last_event_id
        self.reconnects = reconnects
        self.backoff_s = backoff_s
        self.failures = 0

    def headers(self) -> dict[str, str]:
        """What a reconnection sends so that the gateway replays only the events after the last one seen."""
        return {"Last-Event-ID": str(self.last_event_id)} if self.last_event_id is not None else {}

    def seen(self, events: Iterable[JobEvent | None]) -> Iterator[JobEvent]:
        """The events not yet seen (a replayed one is dropped), recording each as the point to resume after."""
        for event in events:
            if event is None or (self.last_event_id is not None and event.id <= self.last_event_id):
                continue
            self.failures, self.last_event_id = 0, event.id
            yield event

    def dropped(self, error: Exception) -> float:
        """How long to wait before reconnecting; ConnectionFailed once `reconnects` tries in a row have failed.
        The error itself is raised when it is not one a reconnection can mend (a 404, a 403)."""
        if isinstance(error, ApiError) and not _transient(error):
            raise error
        self.failures += 1
        if self.failures > self.reconnects:
            raise ConnectionFailed(f"job event stream lost after {self.reconnects} reconnections: {error!r}") from error
        return self.backoff()

    def ended(self) -> float:
        """How long to wait before reconnecting to a stream that ended without the terminal event (its gateway
        shutting down): as after a drop, but never given up on while the gateway keeps answering."""
        return self.backoff()

    def backoff(self) -> float:
        return float(min(30.0, self.backoff_s * 2 ** max(self.failures - 1, 0)))


def _transient(error: ApiError) -> bool:
    """A refusal that may pass once the gateway is back (its request-level retries are spent by then)."""
    return error.status in RETRY_STATUSES or error.status >= 500
