"""Restoring deployments on start, without I/O: the registry is asked until it answers, each wanted deployment is
deployed (verified) and announced, and a name a command has touched since start is left to that command."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from modelops_contracts import Deploy, DeploymentFailed
from modelops_inference import restore as restore_module
from modelops_inference.deployments import Deployments
from modelops_inference.settings import InferenceSettings
from modelops_shared.artifacts import ArtifactUnavailable


class RefusingArtifacts:
    """Every fetch refused, as for a revoked artifact: deploys fail fast, with the reason."""

    def __init__(self) -> None:
        self.fetched: list[str] = []
        self.http = None  # the registry reads under test get their own client

    async def fetch(self, ref: str, kind: Any = None, **_: Any) -> Any:
        self.fetched.append(ref)
        raise ArtifactUnavailable(f"{ref} is revoked")


class FakePool:
    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[Any]:
        class Conn:
            def transaction(self) -> Any:
                return contextlib.nullcontext()

        yield Conn()


@pytest.fixture
async def deployments() -> AsyncIterator[tuple[Deployments, RefusingArtifacts]]:
    artifacts = RefusingArtifacts()
    deployments = Deployments(
        InferenceSettings(inference_backend="transformers", inference_restore_retry_s=0.01),
        artifacts,  # type: ignore[arg-type]
    )
    yield deployments, artifacts
    await deployments.close()


async def test_wanted_deployments_are_redeployed_and_announced_once_the_registry_answers(
    deployments: tuple[Deployments, RefusingArtifacts], monkeypatch: pytest.MonkeyPatch
) -> None:
    service, artifacts = deployments
    answers = iter([httpx.Response(503), httpx.ConnectError("starting")])
    asked: list[str] = []

    def registry(request: httpx.Request) -> httpx.Response:
        asked.append(str(request.url))
        answer = next(answers, None)
        if isinstance(answer, Exception):
            raise answer
        rows = [
            {"name": "kept", "base_model": "base-1", "adapters": ["lora-1"], "status": "ready"},
            {"name": "touched", "base_model": "base-1", "adapters": [], "status": "ready"},
            {"name": "orphan", "base_model": None, "adapters": [], "status": "failed"},
        ]
        return answer or httpx.Response(200, json=rows)

    announced: list[Any] = []

    async def enqueue(conn: Any, bus: Any, message: Any) -> None:
        announced.append(message)

    monkeypatch.setattr(restore_module, "enqueue", enqueue)
    await service.undeploy("touched")  # a command since start: newer than the registry's view
    client = httpx.AsyncClient(transport=httpx.MockTransport(registry), base_url="http://registry")
    attempted = await restore_module.restore(service, client, FakePool(), bus=None)  # type: ignore[arg-type]
    assert attempted == 1
    assert len(asked) == 3
    assert asked[-1] == "http://registry/v1/deployments?wanted=true"
    assert artifacts.fetched == ["base-1"]  # verified again, and refused: the deployment fails with the reason
    assert announced == [DeploymentFailed(name="kept", reason="base-1 is revoked", replica=service.replica)]
    assert service.deployments["kept"].status == "failed"
    assert "touched" not in service.deployments


async def test_a_command_after_the_restore_wins(deployments: tuple[Deployments, RefusingArtifacts]) -> None:
    service, _ = deployments
    command = Deploy(name="x", base_model="base-1", adapters=[], requested_by="inference-restore")
    assert isinstance(await service.restore(command), DeploymentFailed)
    assert await service.restore(command) is None  # already there
    removed = await service.undeploy("x")
    assert removed is not None
    assert await service.restore(command) is None
    assert "x" not in service.deployments
