"""What listing an artifact takes: the registry's record of it and of its base, its files verified (signature and
every digest) into a local copy, and its facts and card read from those files. Nothing unverifiable is listed."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from modelops_contracts import ArtifactKind
from modelops_shared.artifacts import (
    ArtifactClient,
    ArtifactError,
    ArtifactNotFound,
    ArtifactUnavailable,
    ArtifactVerificationError,
    VerifiedArtifact,
)

from . import cards
from .domain import NotListable, RegistryUnavailable

LISTABLE_KINDS = (ArtifactKind.ADAPTER, ArtifactKind.QUANTIZED_MODEL)
MODEL_KINDS = (ArtifactKind.MERGED_MODEL, ArtifactKind.QUANTIZED_MODEL)
PEFT_FILES = ("adapter_config.json", "adapter_model.safetensors")


async def verified(artifacts: ArtifactClient, ref: str, kind: ArtifactKind, *also: ArtifactKind) -> VerifiedArtifact:
    """The artifact's verified local copy; NotListable when it cannot be verified or used, RegistryUnavailable when the
    registry or the store did not answer."""
    try:
        return await artifacts.fetch(ref, kind, also=also)
    except (ArtifactNotFound, ArtifactUnavailable, ArtifactVerificationError) as error:
        raise NotListable(str(error), artifact=ref) from None
    except ArtifactError as error:
        raise RegistryUnavailable(f"the registry could not answer: {error}", retry_after=5) from None


async def listing_fields(artifacts: ArtifactClient, artifact_id: str) -> tuple[VerifiedArtifact, dict[str, Any]]:
    """The artifact verified, and the listing's columns it determines."""
    artifact = await verified(artifacts, artifact_id, ArtifactKind.ADAPTER, ArtifactKind.QUANTIZED_MODEL)
    missing = (
        [name for name in PEFT_FILES if not (artifact.path / name).is_file()] if artifact.kind == "adapter" else []
    )
    if missing:
        raise NotListable(f"{artifact_id} is not a PEFT adapter: it has no {', '.join(missing)}", artifact=artifact_id)
    base_id = (artifact.record.get("metadata") or {}).get("base_model")
    base = None
    if base_id:
        try:
            base = await artifacts.resolve(base_id, ArtifactKind.BASE_MODEL, also=MODEL_KINDS)
        except ArtifactError:
            base = None  # listed without its base's name; compatibility checks still read the base itself
    facts = await asyncio.to_thread(cards.facts, artifact, base)
    state = {
        "stage": artifact.record["stage"],
        "key_id": artifact.record["key_id"],
        "digest": artifact.digest,
        "created_by": artifact.record["created_by"],
        "verified": True,
        "verified_at": datetime.now(UTC),
    }
    return artifact, {**facts, **state}
