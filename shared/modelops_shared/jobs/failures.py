"""Why a job fails without retrying: each failure carries the `error_type` its failed event reports. Services add
their own kinds (a bad spec, a conversion llama.cpp refuses) as subclasses of JobFailure."""

from __future__ import annotations

from typing import Any

from modelops_contracts import ArtifactKind

from ..artifacts import (
    ArtifactClient,
    ArtifactError,
    ArtifactNotFound,
    ArtifactUnavailable,
    ArtifactVerificationError,
    VerifiedArtifact,
)
from .commands import Transient


class JobFailure(Exception):
    """The job cannot succeed as submitted; retrying it would fail the same way."""

    error_type = "error"


class InputNotFound(JobFailure):
    """An artifact or dataset version the job names does not exist."""

    error_type = "not_found"


class InputUnusable(JobFailure):
    """An input exists but may not be used: unregistered, revoked, failing verification, or of the wrong base."""

    error_type = "input_unusable"


async def resolve_input(
    artifacts: ArtifactClient, ref: str, kind: ArtifactKind, *, also: tuple[ArtifactKind, ...] = ()
) -> dict[str, Any]:
    """The registry's record of a job's input, for an input the job names but does not load (lineage, metadata);
    InputNotFound when there is none, Transient when the registry could not answer."""
    try:
        return await artifacts.resolve(ref, kind, also=also)
    except ArtifactNotFound as error:
        raise InputNotFound(str(error)) from None
    except ArtifactUnavailable as error:
        raise InputUnusable(str(error)) from None
    except ArtifactError as error:
        raise Transient(str(error)) from None


async def fetch_input(
    artifacts: ArtifactClient, ref: str, kind: ArtifactKind, *, also: tuple[ArtifactKind, ...] = ()
) -> VerifiedArtifact:
    """The verified local copy of a job's input; InputNotFound or InputUnusable when the job cannot use it, Transient
    when the registry or the store could not answer."""
    try:
        return await artifacts.fetch(ref, kind, also=also)
    except ArtifactNotFound as error:
        raise InputNotFound(str(error)) from None
    except (ArtifactUnavailable, ArtifactVerificationError) as error:
        raise InputUnusable(str(error)) from None
    except ArtifactError as error:
        raise Transient(str(error)) from None
