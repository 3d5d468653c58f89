"""What a job names, checked through the registry's API before anything is queued: the base model (the latest
registered base model of that name, else the artifact of that id) and one exact dataset version (the latest
registered when none is given) whose rows suit the training method (or an evaluation); and, for the jobs of other
workers, an artifact not revoked and an adapter of the model named."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from modelops_contracts import ArtifactKind, DatasetSchema, Stage

from ..registry_lookups import ARTIFACT_ID, RegistryLookups
from .domain import UnknownReference, UnusableReference

REGISTRY_POLL_S = 0.1
_SCHEMAS_OF_METHOD = {
    "sft": {DatasetSchema.SFT.value, DatasetSchema.CHAT.value},
    "dpo": {DatasetSchema.PREFERENCE.value},
    "snn_router": {DatasetSchema.ROUTING.value},
    "evaluation": {DatasetSchema.SFT.value, DatasetSchema.CHAT.value, DatasetSchema.MULTIPLE_CHOICE.value},
}

# The latest version of a dataset this gateway announced (None: never), for versions the registry has yet to record.
Announced = Callable[[str], Awaitable[int | None]]


@dataclass(frozen=True)
class Fields:
    """How the caller's API names the references: for messages, and the `param` of OpenAI's errors."""

    base_model: str = "base_model"
    dataset: str = "dataset"
    dataset_version: str = "dataset_version"
    hyperparameters: str = "hyperparameters"


@dataclass(frozen=True)
class References:
    base_model: dict[str, Any]
    dataset: dict[str, Any]


async def resolve(
    lookups: RegistryLookups,
    announced: Announced,
    *,
    base_model: str,
    dataset: str,
    dataset_version: int | None,
    method: str,
    fields: Fields,
    wait_s: float,
) -> References:
    """Both references, looked up side by side; the base model's problem first when both fail."""
    kind = ArtifactKind.EMBEDDING_MODEL if method == "snn_router" else ArtifactKind.BASE_MODEL
    base = asyncio.create_task(_base_model(lookups, base_model, fields, kind))
    data = asyncio.create_task(
        registered_dataset_version(lookups, announced, dataset, dataset_version, method, fields, wait_s)
    )
    await asyncio.gather(base, data, return_exceptions=True)
    references = References(base.result(), data.result())
    _check_chat_template(references, fields)
    return references


def _check_chat_template(references: References, fields: Fields) -> None:
    """Chat rows are rendered by the base model's chat template: a base imported without one cannot train on them."""
    chat = (references.dataset.get("metadata") or {}).get("schema") == DatasetSchema.CHAT.value
    if chat and (references.base_model.get("metadata") or {}).get("chat_template") is False:
        raise UnusableReference(
            slug="base-model-lacks-chat-template",
            detail=f"{fields.base_model}: {references.base_model['id']} has no chat template, which chat rows need;"
            " import it with one (chat_template.jinja, or `chat_template` in tokenizer_config.json)",
            param=fields.base_model,
        )


async def _base_model(lookups: RegistryLookups, ref: str, fields: Fields, kind: ArtifactKind) -> dict[str, Any]:
    """The registry's record of the base model (of `kind`: an embedding model for a router) `ref` names; a 404 or 422
    problem when there is no usable one."""
    named = await lookups.registered(kind, ref)
    if named:
        latest = max(named, key=lambda record: datetime.fromisoformat(record["created_at"]))
        return _usable_base_model(latest, fields, kind)
    detail = f"no registered {kind.value.replace('_', ' ')} {ref!r}"
    if ARTIFACT_ID.fullmatch(ref):
        response = await lookups.registry.request("GET", f"/v1/artifacts/{ref}")
        if response.status_code == 200:
            return _usable_base_model(response.json(), fields, kind)
        pending = response.json().get("submission_status") if response.status_code == 404 else None
        if pending:
            detail = f"artifact {ref} is {pending}, not registered"
    raise UnknownReference(
        slug="base-model-not-found", detail=f"{fields.base_model}: {detail}", param=fields.base_model
    )


async def registered_dataset_version(
    lookups: RegistryLookups,
    announced: Announced,
    name: str,
    version: int | None,
    method: str,
    fields: Fields,
    wait_s: float,
) -> dict[str, Any]:
    """The registry's record of dataset `name` at `version` (the latest registered when None), checked to suit
    `method`. A version this gateway announced (an upload, an OpenAI file) that the registry has yet to record is
    waited for up to `wait_s`, so a job may name a dataset the moment its upload returned."""
    deadline = time.monotonic() + wait_s
    latest_announced: int | None = None
    fresh = False
    while True:
        versions = await _versions(lookups, name, fresh=fresh)
        chosen = version if version is not None else max(versions, default=None)
        if chosen is not None and chosen in versions:
            return _usable_dataset(versions[chosen], method, fields)
        if not fresh:
            fresh = True  # a kept listing may predate the version asked for
            continue
        if latest_announced is None:
            latest_announced = await announced(name)
        awaited = version if version is not None else latest_announced
        if awaited is None or latest_announced is None or awaited > latest_announced or time.monotonic() > deadline:
            break
        await asyncio.sleep(REGISTRY_POLL_S)
    if not versions:
        raise UnknownReference(
            slug="dataset-not-found", detail=f"{fields.dataset}: no registered dataset {name!r}", param=fields.dataset
        )
    raise UnknownReference(
        slug="dataset-version-not-found",
        detail=f"{fields.dataset_version}: dataset {name!r} has no registered version {version}",
        param=fields.dataset_version,
        versions=sorted(versions),
    )


async def _versions(lookups: RegistryLookups, name: str, *, fresh: bool) -> dict[int, dict[str, Any]]:
    return {
        int(record["version"]): record
        for record in await lookups.registered(ArtifactKind.DATASET, name, fresh=fresh)
        if record["version"].isdigit()  # Delta versions; only those can be trained on
    }


def _usable_base_model(record: dict[str, Any], fields: Fields, kind: ArtifactKind) -> dict[str, Any]:
    if record["kind"] != kind.value:
        raise UnusableReference(
            slug=f"not-a-{kind.value.replace('_', '-')}",
            detail=f"{fields.base_model}: artifact {record['id']} is a {record['kind']}, not a {kind.value}",
            param=fields.base_model,
        )
    if record["stage"] == Stage.REVOKED.value:
        raise UnusableReference(
            slug="base-model-revoked", detail=f"{fields.base_model}: {record['id']} is revoked", param=fields.base_model
        )
    return record


def _usable_dataset(record: dict[str, Any], method: str, fields: Fields) -> dict[str, Any]:
    if record["stage"] == Stage.REVOKED.value:
        raise UnusableReference(
            slug="dataset-revoked", detail=f"{fields.dataset}: {record['id']} is revoked", param=fields.dataset
        )
    schema = (record.get("metadata") or {}).get("schema")
    if schema is not None and schema not in _SCHEMAS_OF_METHOD[method]:
        raise UnusableReference(
            slug="dataset-schema-mismatch",
            detail=f"{fields.dataset}: {method} takes {' or '.join(sorted(_SCHEMAS_OF_METHOD[method]))} rows;"
            f" {record['name']} holds {schema} rows",
            param=fields.dataset,
        )
    return record


def usable(record: dict[str, Any], param: str) -> dict[str, Any]:
    """The artifact a worker job names (quantization, evaluation), unless it is revoked."""
    if record["stage"] == Stage.REVOKED.value:
        raise UnusableReference(slug="artifact-revoked", detail=f"{param}: {record['id']} is revoked", param=param)
    return record


async def adapter_of(lookups: RegistryLookups, ref: str, model: dict[str, Any]) -> dict[str, Any]:
    """The adapter `ref` names, usable and trained on `model`; a problem naming the `adapter` field otherwise."""
    adapter = usable(await lookups.resolve(ArtifactKind.ADAPTER, ref, "adapter"), "adapter")
    trained_on = (adapter.get("metadata") or {}).get("base_model")
    if trained_on != model["id"]:
        raise UnusableReference(
            slug="adapter-base-mismatch",
            detail=f"adapter: {adapter['id']} was trained on {trained_on}, not on {model['id']}",
            param="adapter",
        )
    return adapter
