"""What each model import event does to its import: the gateway's projection of models.events.v1.

Consumes: models.events.v1 (consumer group: the gateway's schema name)."""

from __future__ import annotations

from modelops_contracts import Message, ModelImported, ModelImportFailed
from modelops_shared.bus import MessageContext

from .store import record_outcome


async def project(body: Message, ctx: MessageContext) -> None:
    if isinstance(body, ModelImported):
        await record_outcome(ctx.conn, body.import_id, status="completed", name=body.name)
    elif isinstance(body, ModelImportFailed):
        await record_outcome(ctx.conn, body.import_id, status="failed", reason=body.reason)
