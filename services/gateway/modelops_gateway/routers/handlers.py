"""The gateway's projection of router.events.v1, run by an IdempotentConsumer in the transaction that also records
the message as processed.

Consumes: router.events.v1 (consumer group: `<gateway schema>-routers`)."""

from __future__ import annotations

import logging

from modelops_contracts import Message, RouteCorrected, RouteDecided
from modelops_shared.bus import MessageContext

from . import store

log = logging.getLogger(__name__)


async def project(message: Message, context: MessageContext) -> None:
    if isinstance(message, RouteDecided):
        await store.record_decision(context.conn, message, context.envelope.time)
    elif isinstance(message, RouteCorrected) and not await store.record_correction(
        context.conn, message, context.envelope.time
    ):
        # Both are keyed by the router, so a correction never overtakes its decision on the topic.
        log.warning("correction of unknown decision %s of router %s ignored", message.decision_id, message.router)
