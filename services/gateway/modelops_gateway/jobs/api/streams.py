"""A job's events as they happen, for viewers: Server-Sent Events, resumable with `Last-Event-ID`, and the same
events over a WebSocket, resumable with `?last_event_id=`. An event's id is its seq in the job's event table, so a
stream sends exactly the events after the last one its client saw, then each as it commits (on any replica), and
ends after the job's terminal event (completed, failed or cancelled)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Query, Response, WebSocket, WebSocketDisconnect
from modelops_shared.errors import DomainError
from modelops_shared.problems import problem_for
from sse_starlette import EventSourceResponse, ServerSentEvent

from ...deps import GatewayDep
from ...web.auth import Role, Viewer, authenticate_websocket
from ...web.openapi import problems
from ..domain import JobNotFound
from ..schemas import wire
from ..store import JobEvent, get_job
from . import JobId

log = logging.getLogger(__name__)

MAX_SEQ = 2**63 - 1  # an event's seq is a Postgres bigint: a larger one is refused at the edge, not by the driver
EventId = Annotated[
    int | None, Query(ge=0, le=MAX_SEQ, description="Resume after this event id (the last one received)")
]

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


async def _sse(events: AsyncIterator[JobEvent]) -> AsyncIterator[ServerSentEvent]:
    async for event in events:
        yield ServerSentEvent(data=json.dumps(wire(event)), event=event.type, id=str(event.seq))


@router.get(
    "/{job_id}/events",
    response_class=EventSourceResponse,
    responses={
        200: {"description": "`id:` the event's seq, `event:` its type, `data:` the event as JSON"},
        204: {"description": "The job has finished and the client saw its last event: nothing more will come"},
        **problems(401, 403, 404, 422, 429),
    },
)
async def stream_job_events(
    _: Viewer,
    gateway: GatewayDep,
    job_id: JobId,
    last_event_id: Annotated[
        int | None,
        Header(
            alias="Last-Event-ID", ge=0, le=MAX_SEQ, description="Resume after this event (an EventSource sends it)"
        ),
    ] = None,
) -> Response:
    """The job's events as Server-Sent Events: those after `Last-Event-ID` (all without it), then each as it
    happens, with a keep-alive comment every `MODELOPS_GATEWAY_STREAM_PING_S`; the stream ends after the job's
    terminal event."""
    job = await get_job(gateway.runtime.pool, job_id)
    if job is None:
        raise JobNotFound(job_id)
    after = last_event_id or 0
    if job.finished and after >= job.last_seq:
        # The one answer that stops a browser's EventSource from reconnecting for ever to a finished job.
        return Response(status_code=204)
    return EventSourceResponse(_sse(gateway.feed.follow(job_id, after)), ping=gateway.settings.gateway_stream_ping_s)


@router.websocket("/{job_id}/ws")
async def job_events_socket(
    websocket: WebSocket,
    gateway: GatewayDep,
    job_id: JobId,
    api_key: Annotated[str | None, Query(description="The API key, for clients that cannot send headers")] = None,
    last_event_id: EventId = None,
) -> None:
    """The job's events as JSON text messages, as on the SSE stream; closed with 1000 after the terminal event.
    The key goes in `Authorization: Bearer <key>`, or in `?api_key=` where a client cannot set headers. A refused
    handshake is answered with the HTTP problem (401, 403, 404, 429)."""
    try:
        await authenticate_websocket(websocket, gateway, Role.VIEWER, api_key)
        if await get_job(gateway.runtime.pool, job_id) is None:
            raise JobNotFound(job_id)
    except (DomainError, HTTPException) as refusal:
        await websocket.send_denial_response(problem_for(websocket, refusal))
        return
    await websocket.accept()

    async def send_events() -> None:
        async for event in gateway.feed.follow(job_id, last_event_id or 0):
            await websocket.send_json(wire(event))

    async def until_closed() -> None:
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass  # the client has nothing to say; only its leaving matters

    sender = asyncio.create_task(send_events())
    closed = asyncio.create_task(until_closed())
    done, _ = await asyncio.wait({sender, closed}, return_when=asyncio.FIRST_COMPLETED)
    for task in (sender, closed):
        task.cancel()
    await asyncio.gather(sender, closed, return_exceptions=True)
    failure = None if closed in done else sender.exception()
    if closed in done or isinstance(failure, WebSocketDisconnect):
        return  # the client left
    if failure is not None:
        log.error("job event socket of %s failed", job_id, exc_info=failure)
    await websocket.close(1011 if failure else 1000)
