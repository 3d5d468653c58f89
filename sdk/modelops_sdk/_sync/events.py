# Generated from sdk/modelops_sdk/_async/events.py by `make sdk-models`; do not edit.
"""A job's events as they happen, resumed after a dropped connection or an early end, until the terminal one
(how events are parsed and where a stream resumes: ../events.py)."""

from __future__ import annotations

# Only for asyncio.sleep, which unasync turns into time.sleep in the generated twin.
import time
from collections.abc import Iterator

import httpx

from ..errors import ApiError, ConnectionFailed
from ..events import STREAM_TIMEOUT, JobEvent, Resumption, SseParser
from .http import SyncHttp


def stream(
    http: SyncHttp, job_id: str, last_event_id: int | None = None, reconnects: int = 10, backoff_s: float = 0.5
) -> Iterator[JobEvent]:
    """The job's events after `last_event_id` (all without it), live, until its terminal event."""
    where = Resumption(last_event_id, reconnects, backoff_s)
    while True:
        parser = SseParser()
        try:
            path, headers = f"/v1/jobs/{job_id}/events", where.headers()
            with http.stream("GET", path, headers=headers, timeout=STREAM_TIMEOUT) as response:
                if response.status_code == 204:
                    return  # finished, and everything was seen already
                for line in response.iter_lines():
                    for event in where.seen([parser.feed(line)]):
                        yield event
                        if event.terminal:
                            return
        except (httpx.TransportError, ConnectionFailed, ApiError) as error:
            time.sleep(where.dropped(error))
            continue
        time.sleep(where.ended())  # the stream ended early (its gateway restarting): resume it after a pause
