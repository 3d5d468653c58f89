"""A job's progress events, published directly rather than through the outbox: they are advisory, so a broker that
does not answer within the timeout costs the event (logged), never the job; the outcome goes via the outbox."""

from __future__ import annotations

import asyncio
import logging

from modelops_contracts import Envelope, Message

from ..bus import Bus

log = logging.getLogger(__name__)

PUBLISH_TIMEOUT_S = 30.0


async def publish_progress(bus: Bus, message: Message, job_id: str, cause: Envelope) -> None:
    try:
        async with asyncio.timeout(PUBLISH_TIMEOUT_S):
            await bus.publish(message, correlation_id=job_id, causation=cause)
    except Exception:
        log.exception("could not publish %s for job %s", message.type, job_id)
