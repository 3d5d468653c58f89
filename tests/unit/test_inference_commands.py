"""Deployment commands leave the consumer at once: a slow Deploy (a model load) runs in the command worker, not in the
consumer's poll loop or a database transaction; commands apply in the order they came; each outcome is announced
with the command as its cause, once the database takes it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from modelops_contracts import Deploy, DeploymentReady, DeploymentRemoved, Undeploy, new_envelope
from modelops_inference import handlers as handlers_module
from modelops_inference.handlers import Handlers
from modelops_shared.bus import MessageContext


class SlowDeployments:
    """Deploys wait until released, as a model load does; what ran is recorded in order."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.ran: list[str] = []

    async def deploy(self, command: Deploy) -> DeploymentReady:
        await self.release.wait()
        self.ran.append(f"deploy {command.name}")
        return DeploymentReady(name=command.name, base_model=command.base_model, backend="transformers")

    async def undeploy(self, name: str) -> DeploymentRemoved:
        self.ran.append(f"undeploy {name}")
        return DeploymentRemoved(name=name, reason="undeployed")


class FlakyPool:
    """A pool whose first `failures` acquisitions fail, as a database restarting would."""

    def __init__(self, failures: int) -> None:
        self.failures = failures

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[Any]:
        if self.failures:
            self.failures -= 1
            raise asyncpg.CannotConnectNowError("the database system is starting up")
        yield type("Conn", (), {"transaction": lambda self: contextlib.nullcontext()})()


@pytest.fixture
def announced(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, Any]]:
    staged: list[tuple[Any, Any]] = []

    async def enqueue(conn: Any, bus: Any, message: Any, *, causation: Any = None) -> None:
        staged.append((message, causation))

    monkeypatch.setattr(handlers_module, "enqueue", enqueue)
    monkeypatch.setattr(handlers_module, "ANNOUNCE_RETRY_S", 0.01)
    return staged


async def test_a_slow_deploy_leaves_the_consumer_at_once_and_commands_keep_their_order(
    announced: list[tuple[Any, Any]],
) -> None:
    deployments = SlowDeployments()
    handlers = Handlers(deployments)  # type: ignore[arg-type]
    deploy = Deploy(name="d", base_model="base-1", requested_by="alice")
    undeploy = Undeploy(name="d", requested_by="alice")
    envelopes = [new_envelope(message, source="/tests") for message in (deploy, undeploy)]
    async with handlers.working(FlakyPool(failures=2), bus=None):  # type: ignore[arg-type]
        # The Deploy's message delivered twice (the consumer failed to commit after queueing it): applied once.
        for message, envelope in zip((deploy, deploy, undeploy), (envelopes[0], *envelopes), strict=True):
            context = MessageContext(envelope=envelope, conn=None, bus=None)  # type: ignore[arg-type]
            await asyncio.wait_for(handlers.command(message, context), timeout=1)  # the load has not even begun
        await asyncio.sleep(0.05)
        assert deployments.ran == []  # the Undeploy waits for the Deploy before it
        deployments.release.set()
        async with asyncio.timeout(5):
            while len(announced) < 2:
                await asyncio.sleep(0.01)
    assert deployments.ran == ["deploy d", "undeploy d"]
    assert [(type(message).__name__, cause.id) for message, cause in announced] == [
        ("DeploymentReady", envelopes[0].id),
        ("DeploymentRemoved", envelopes[1].id),
    ]
