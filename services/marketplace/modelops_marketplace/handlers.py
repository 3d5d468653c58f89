"""The marketplace's projections. Registry events: an adapter or quantized model is known once signed, listed
(after its files are verified here) when promoted to prod, delisted when revoked or archived. Marketplace events:
each download and install counts once — the consumer records every event it applied, so redelivery adds nothing.

Consumes: registry.artifacts.v1 (group `<schema>-registry`), marketplace.events.v1 (group `<schema>-usage`)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from modelops_contracts import ArtifactPromoted, ArtifactRegistered, Message, Stage
from modelops_contracts.marketplace import ListingDownloaded, ListingInstalled
from modelops_shared.artifacts import ArtifactClient
from modelops_shared.bus import MessageContext

from . import store
from .domain import NotListable
from .listing import LISTABLE_KINDS, listing_fields

log = logging.getLogger(__name__)
DELISTING = (Stage.REVOKED, Stage.ARCHIVED)


def registry_projection(artifacts: ArtifactClient) -> Callable[[Message, MessageContext], Awaitable[None]]:
    async def project(message: Message, context: MessageContext) -> None:
        match message:
            case ArtifactRegistered() if message.kind in LISTABLE_KINDS:
                await store.record_registered(context.conn, message.model_dump(mode="json"))
            case ArtifactPromoted():
                known = await store.known(context.conn, message.artifact_id)
                if known is None:
                    return
                fields: dict[str, Any] | None = None
                if message.to_stage == Stage.PROD and not known["listed"]:
                    try:  # fetched and verified before any row is locked: it may take a while
                        artifact, fields = await listing_fields(artifacts, message.artifact_id)
                    except NotListable as error:
                        log.warning("not listing %s: %s", message.artifact_id, error)
                        await store.delist(context.conn, message.artifact_id, str(error))
                    else:
                        fields = {**fields, **({} if known["publisher"] else {"title": artifact.name})}
                await store.set_stage(context.conn, message.artifact_id, message.to_stage.value)
                if message.to_stage in DELISTING and known["listed"]:
                    await store.delist(context.conn, message.artifact_id, f"{message.to_stage.value}: {message.reason}")
                elif fields is not None:
                    await store.list_artifact(context.conn, message.artifact_id, fields)  # a publisher's title stays

    return project


async def count_usage(message: Message, context: MessageContext) -> None:
    match message:
        case ListingDownloaded():
            await store.count(context.conn, message.artifact_id, "downloads")
        case ListingInstalled():
            await store.count(context.conn, message.artifact_id, "installs")
