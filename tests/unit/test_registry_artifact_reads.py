"""The registry's artifact read against a registration that commits between its two queries: the artifact, not a 404
saying it is registered (seen once in CI as a deployment failed with "artifact ... is registered")."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from modelops_registry import api
from modelops_registry.store import queries
from modelops_shared.problems import Problem


async def test_an_artifact_registered_between_the_reads_is_returned(monkeypatch: pytest.MonkeyPatch) -> None:
    rows: list[dict[str, Any] | None] = [None, {"id": "adapter-1"}]  # absent at the first read, there at the next

    async def get_artifact(pool: object, artifact_id: str) -> dict[str, Any] | None:
        return rows.pop(0)

    async def submission(pool: object, artifact_id: str) -> dict[str, Any]:
        return {"artifact_id": artifact_id, "status": "registered", "reason": None}

    monkeypatch.setattr(queries, "get_artifact", get_artifact)
    monkeypatch.setattr(queries, "submission", submission)
    registry: Any = SimpleNamespace(runtime=SimpleNamespace(pool=None))
    assert await api._artifact_or_404(registry, "adapter-1") == {"id": "adapter-1"}


async def test_a_pending_submission_is_still_a_404_naming_its_status(monkeypatch: pytest.MonkeyPatch) -> None:
    async def get_artifact(pool: object, artifact_id: str) -> None:
        return None

    async def submission(pool: object, artifact_id: str) -> dict[str, Any]:
        return {"artifact_id": artifact_id, "status": "pending", "reason": None}

    monkeypatch.setattr(queries, "get_artifact", get_artifact)
    monkeypatch.setattr(queries, "submission", submission)
    registry: Any = SimpleNamespace(runtime=SimpleNamespace(pool=None))
    with pytest.raises(Problem) as raised:
        await api._artifact_or_404(registry, "adapter-1")
    assert raised.value.status == 404
