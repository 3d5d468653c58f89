"""What each consumed message does: deploy and undeploy commands, and revocations of artifacts being served.

A Deploy can take minutes (a model download, a vLLM start), longer than Kafka lets a consumer go between polls
before it is rebalanced out of its group, and longer than a database transaction should stay open. So a command's
handler only queues it: one worker applies the queue in order (an Undeploy never overtakes the Deploy before it)
and announces each outcome in a transaction of its own; a command queued twice (its message delivered again before
the consumer committed) is applied once. The offset is committed once the command is queued, so a
replica that stops with commands still queued loses them; on its next start the restore asks the registry what is
wanted (restore.py), as after any restart. Revocations only take things out of service, which is quick: they are
handled in the consumer.

Consumes: deployments.commands.v1 (Deploy, Undeploy), registry.artifacts.v1 (ArtifactPromoted to revoked).
Produces: deployments.events.v1 (DeploymentReady, DeploymentFailed, DeploymentRemoved), through the outbox."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from modelops_contracts import ArtifactPromoted, Deploy, Envelope, Message, Stage, Undeploy
from modelops_shared.bus import Bus, MessageContext, enqueue
from modelops_shared.bus.consumer import is_outage
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context

from .deployments import Deployments

log = logging.getLogger(__name__)
APPLIED_KEPT = 4096  # more than a redelivery can lag behind
ANNOUNCE_RETRY_S = 0.2
MAX_ANNOUNCE_RETRY_S = 10.0
# A command, its envelope, and the trace context it came in (its span continues there, off the consumer's task).
Command = tuple[Deploy | Undeploy, Envelope, Context]
tracer = trace.get_tracer(__name__)


class Handlers:
    def __init__(self, deployments: Deployments) -> None:
        self.deployments = deployments
        self.commands: asyncio.Queue[Command] = asyncio.Queue()
        self._applied: OrderedDict[str, None] = OrderedDict()  # the latest envelope ids applied, oldest first

    async def command(self, body: Message, ctx: MessageContext) -> None:
        if isinstance(body, Deploy | Undeploy):
            self.commands.put_nowait((body, ctx.envelope, otel_context.get_current()))

    async def artifact(self, body: Message, ctx: MessageContext) -> None:
        # Revocation only narrows what is served, so it is acted on without checking the promotion's signature.
        if isinstance(body, ArtifactPromoted) and body.to_stage == Stage.REVOKED:
            for failed in await self.deployments.revoke(body.artifact_id, body.reason):
                await ctx.emit(failed)

    @asynccontextmanager
    async def working(self, pool: asyncpg.Pool, bus: Bus) -> AsyncIterator[None]:
        """The worker that applies queued commands, running while the block runs."""
        worker = asyncio.create_task(self._work(pool, bus), name="deployment-commands")
        try:
            yield
        finally:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker

    async def _work(self, pool: asyncpg.Pool, bus: Bus) -> None:
        while True:
            command, envelope, traced = await self.commands.get()
            if envelope.id in self._applied:
                continue
            self._applied[envelope.id] = None
            if len(self._applied) > APPLIED_KEPT:
                self._applied.popitem(last=False)
            try:
                with tracer.start_as_current_span(
                    f"inference {type(command).__name__}",
                    context=traced,
                    attributes={"modelops.deployment": command.name},
                ):
                    await self._apply(command, envelope, pool, bus)
            except Exception:
                log.exception("deployment command %s for %s failed", envelope.id, command.name)

    async def _apply(self, command: Deploy | Undeploy, envelope: Envelope, pool: asyncpg.Pool, bus: Bus) -> None:
        outcome = (
            await self.deployments.deploy(command)
            if isinstance(command, Deploy)
            else await self.deployments.undeploy(command.name)
        )
        if outcome is not None:
            await _announce(outcome, envelope, pool, bus)


async def _announce(outcome: Message, envelope: Envelope, pool: asyncpg.Pool, bus: Bus) -> None:
    """Stage the outcome in the outbox, trying again while the database is unreachable: what was done is told."""
    delay = ANNOUNCE_RETRY_S
    while True:
        try:
            async with pool.acquire() as conn, conn.transaction():
                await enqueue(conn, bus, outcome, causation=envelope)
            return
        except Exception as error:
            if not is_outage(error):
                log.exception("announcing %s failed; it is not announced", type(outcome).__name__)
                return
            log.warning("announcing %s failed (%s); trying again in %.1f s", type(outcome).__name__, error, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_ANNOUNCE_RETRY_S)
