"""Why a job fails without retrying: each failure carries the `error_type` its failed event reports. Services add
their own kinds (a bad spec, a conversion llama.cpp refuses) as subclasses of JobFailure."""

from __future__ import annotations

import logging
from typing import Any

import httpx
from modelops_contracts import ArtifactKind

from ..artifacts import (
    ArtifactClient,
    ArtifactError,
    ArtifactNotFound,
    ArtifactUnavailable,
    ArtifactVerificationError,
    VerifiedArtifact,
)
from ..storage import StoreError
from .commands import JobCommands, Outcome, Transient

log = logging.getLogger(__name__)


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


def outcome_of_error(commands: JobCommands, job_id: str, error: Exception, *, error_type: str) -> Outcome:
    """How a run that raised `error` ends: failed with the failure's own type, `out_of_memory`, or `error_type` with
    the exception for anything unforeseen; an infrastructure failure (registry, store, broker) is no outcome: it is
    raised again as Transient, and the job retried."""
    if isinstance(error, JobFailure):
        return commands.failed(job_id, error.error_type, str(error))
    if isinstance(error, MemoryError):
        return commands.failed(job_id, "out_of_memory", f"out of memory: {error}"[:2000])
    if isinstance(error, httpx.TransportError | StoreError | ConnectionError | Transient):
        raise Transient(f"{type(error).__name__}: {error}") from error
    log.error("job %s failed", job_id, exc_info=error)
    return commands.failed(job_id, error_type, f"{type(error).__name__}: {error}"[:2000])
