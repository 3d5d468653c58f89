"""The gateway's projection of usage.events.v1: each measured use of a job or deployment this gateway accepted, priced
and recorded with its owner, run by an IdempotentConsumer in the transaction that also records the message as
processed. Another gateway's (schema's) jobs and deployments are its own to report.

Consumes: usage.events.v1 (consumer group: `<gateway schema>-usage`)."""

from __future__ import annotations

from datetime import timedelta

from modelops_contracts import DeploymentUsageRecorded, JobUsageRecorded, Message
from modelops_shared.bus import Handler, MessageContext

from ..settings import Prices
from . import store
from .domain import price


def projector(prices: Prices) -> Handler:
    """The handler, pricing with `prices`."""

    async def project(message: Message, context: MessageContext) -> None:
        conn, envelope = context.conn, context.envelope
        if isinstance(message, JobUsageRecorded):
            owner = await store.job_owner(conn, message.job_id)
            if owner is None:
                return
            record = store.UsageRecord(
                message_id=envelope.id,
                source="job",
                subject=message.job_id,
                kind=message.kind,
                owner=owner,
                worker=message.worker,
                period_start=envelope.time - timedelta(seconds=message.usage.wall_seconds),
                period_end=envelope.time,
                requests=0,
                usage=message.usage,
                cost=price(message.usage, prices),
                currency=prices.currency,
            )
        elif isinstance(message, DeploymentUsageRecorded):
            owner = await store.deployment_owner(conn, message.deployment)
            if owner is None:
                return
            record = store.UsageRecord(
                message_id=envelope.id,
                source="deployment",
                subject=message.deployment,
                kind="deployment",
                owner=owner,
                worker=message.replica,
                period_start=message.period_start,
                period_end=message.period_end,
                requests=message.requests,
                usage=message.usage,
                cost=price(message.usage, prices),
                currency=prices.currency,
            )
        else:
            return
        await store.record(conn, record)

    return project
