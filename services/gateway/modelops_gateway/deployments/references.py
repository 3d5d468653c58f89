"""What a deployment serves, checked through the registry before its Deploy is accepted: the base model and each
adapter resolved to one registered artifact (an id, or a name: its latest artifact of that kind), of the right kind,
in a stage the registry's policy deploys, and each adapter trained on that base. The Deploy then names ids only, so
a later artifact that takes the same name takes over neither the deployment nor its restore."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from modelops_contracts import ArtifactKind

from ..registry_lookups import RegistryLookups
from .domain import ArtifactNotDeployable, UnusableDeployReference


@dataclass(frozen=True)
class Deployable:
    base_model: dict[str, Any]
    adapters: list[dict[str, Any]]


async def deployable(
    lookups: RegistryLookups, base_model: str, adapters: list[str], routes: dict[str, Any] | None = None
) -> Deployable:
    """The records the deployment will serve, or the problem that refuses it (the base model's first). The base is a
    base model (served by transformers or vLLM), a GGUF quantized_model (served by llama.cpp), whose adapters are
    then GGUF LoRAs (quantized_model artifacts of role `lora`), or a router, which takes routes for each of its
    targets and no adapters."""
    policy, base = await asyncio.gather(
        lookups.policy(),
        lookups.resolve(
            ArtifactKind.BASE_MODEL,
            base_model,
            "base_model",
            also=(ArtifactKind.QUANTIZED_MODEL, ArtifactKind.ROUTER),
        ),
    )
    _check_routes(base, adapters, routes)
    gguf = base["kind"] == ArtifactKind.QUANTIZED_MODEL.value
    if gguf and _role(base) == "lora":
        detail = f"base_model: {base['id']} is a GGUF LoRA; deploy it in `adapters` over a GGUF model"
        raise UnusableDeployReference(detail, slug="gguf-lora-as-model", param="base_model")
    adapter_kind = ArtifactKind.QUANTIZED_MODEL if gguf else ArtifactKind.ADAPTER
    trained = await asyncio.gather(
        *(lookups.resolve(adapter_kind, ref, f"adapters[{i}]") for i, ref in enumerate(adapters))
    )
    stages = set(policy["deploy"]["stages"])
    for record, param in [(base, "base_model"), *((a, f"adapters[{i}]") for i, a in enumerate(trained))]:
        if record["stage"] not in stages:
            raise ArtifactNotDeployable(record, sorted(stages), param)
    bases = {base["id"], (base.get("metadata") or {}).get("base_model")} - {None}
    for i, adapter in enumerate(trained):
        if gguf and _role(adapter) != "lora":
            detail = f"adapters[{i}]: {adapter['id']} is a whole GGUF model, not a LoRA"
            raise UnusableDeployReference(detail, slug="not-a-gguf-lora", param=f"adapters[{i}]")
        trained_on = (adapter.get("metadata") or {}).get("base_model")
        if trained_on and trained_on not in bases:
            raise UnusableDeployReference(
                f"adapters[{i}]: {adapter['id']} was trained on {trained_on}, not on {base['id']}",
                slug="adapter-base-mismatch",
                param=f"adapters[{i}]",
            )
    return Deployable(base, list(trained))


def _check_routes(base: dict[str, Any], adapters: list[str], routes: dict[str, Any] | None) -> None:
    """A router comes with a route for each of its targets and nothing else; any other model with no routes."""
    if base["kind"] != ArtifactKind.ROUTER.value:
        if routes is not None:
            detail = f"routes: {base['id']} is a {base['kind']}, not a router"
            raise UnusableDeployReference(detail, slug="routes-without-router", param="routes")
        return
    if adapters:
        detail = f"adapters: {base['id']} is a router; its targets are deployments, named in `routes`"
        raise UnusableDeployReference(detail, slug="router-with-adapters", param="adapters")
    labels = set((base.get("metadata") or {}).get("labels") or [])
    if set(routes or {}) != labels:
        detail = f"routes: router {base['id']} chooses among {sorted(labels)}; give one route for each, no other"
        raise UnusableDeployReference(detail, slug="routes-mismatch", param="routes", targets=sorted(labels))


def _role(record: dict[str, Any]) -> str | None:
    """`model` or `lora`, for a quantized_model the quantizer made."""
    return (record.get("metadata") or {}).get("role")
