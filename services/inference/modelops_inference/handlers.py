"""What each consumed message does: deploy and undeploy commands, and revocations of artifacts being served.

Consumes: deployments.commands.v1 (Deploy, Undeploy), registry.artifacts.v1 (ArtifactPromoted to revoked).
Produces: deployments.events.v1 (DeploymentReady, DeploymentFailed, DeploymentRemoved), through the outbox."""

from __future__ import annotations

from modelops_contracts import ArtifactPromoted, Deploy, Message, Stage, Undeploy
from modelops_shared.bus import MessageContext

from .deployments import Deployments


class Handlers:
    def __init__(self, deployments: Deployments) -> None:
        self.deployments = deployments

    async def command(self, body: Message, ctx: MessageContext) -> None:
        if isinstance(body, Deploy):
            await ctx.emit(await self.deployments.deploy(body))
        elif isinstance(body, Undeploy):
            removed = await self.deployments.undeploy(body.name)
            if removed is not None:
                await ctx.emit(removed)

    async def artifact(self, body: Message, ctx: MessageContext) -> None:
        # Revocation only narrows what is served, so it is acted on without checking the promotion's signature.
        if isinstance(body, ArtifactPromoted) and body.to_stage == Stage.REVOKED:
            for failed in await self.deployments.revoke(body.artifact_id, body.reason):
                await ctx.emit(failed)
