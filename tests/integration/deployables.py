"""Artifacts a deployment may serve, for tests whose inference service is a stand-in: a base model and adapters of
small made-up files, submitted as the trainer would, registered, and promoted to staging (the stage the registry's
policy deploys by default) by an admin acting through the gateway."""

from __future__ import annotations

import hashlib
import uuid

import httpx
from helpers import acting_as, registered
from modelops_contracts import ArtifactKind, ArtifactSubmitted, FileDigest, LineageRelation, ParentRef
from modelops_shared.bus import Bus
from modelops_shared.settings import Settings
from modelops_shared.storage import open_store


async def promote(
    registry: httpx.AsyncClient, artifact_id: str, stage: str = "staging", *, reason: str = "tests"
) -> None:
    """Promote as an admin, through the registry (the policy decides: an adapter needs its eval_loss); nothing to do
    when it is in `stage` already."""
    if (await registry.get(f"/v1/artifacts/{artifact_id}")).json()["stage"] == stage:
        return
    body = {"to_stage": stage, "reason": reason}
    response = await registry.post(
        f"/v1/artifacts/{artifact_id}/promotions", json=body, headers=acting_as("root", "admin")
    )
    assert response.status_code == 201, response.text


async def stand_in(
    settings: Settings,
    bus: Bus,
    registry: httpx.AsyncClient,
    kind: ArtifactKind,
    *,
    base_model: str | None = None,
    stage: str | None = "staging",
) -> str:
    """A registered artifact of `kind` (an adapter of `base_model`), in `stage` (None: left in dev); its id."""
    name = f"stand-in-{kind.value.replace('_', '-')}-{uuid.uuid4().hex[:8]}"
    store = open_store(settings.store_url, settings)
    content = name.encode() * 64
    await store.put(f"artifacts/{name}/weights.bin", content)
    adapter = kind is ArtifactKind.ADAPTER
    await bus.publish(
        ArtifactSubmitted(
            artifact_id=name,
            kind=kind,
            name=name,
            uri=store.url_of(f"artifacts/{name}"),
            files=[FileDigest(path="weights.bin", sha256=hashlib.sha256(content).hexdigest(), size=len(content))],
            parents=[ParentRef(artifact_id=base_model, relation=LineageRelation.TRAINED_FROM)] if base_model else [],
            metrics={"eval_loss": 1.0} if adapter else {},
            created_by="alice",
            metadata={"method": "lora", "base_model": base_model} if adapter else {},
        )
    )
    await registered(registry, name)
    if stage is not None:
        await promote(registry, name, stage)
    return name
