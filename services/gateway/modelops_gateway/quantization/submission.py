"""Submitting and cancelling quantization jobs. What a job names is checked through the registry first (a base model,
and an adapter trained on it, neither revoked); the job's row and its StartQuantization then commit in one
transaction, and a cancel records the request with its CancelQuantization the same way.

Produces: quantization.commands.v1 (StartQuantization, CancelQuantization)."""

from __future__ import annotations

from typing import Any

import asyncpg
from modelops_contracts import (
    ArtifactKind,
    CancelQuantization,
    QuantizationFormat,
    StartQuantization,
    quantization_warnings,
)
from modelops_shared.bus import Bus, enqueue

from ..access.domain import Role
from ..jobs.domain import UnusableReference
from ..jobs.references import adapter_of, usable
from ..registry_lookups import RegistryLookups
from .store import JOBS, insert_job, new_job_id


async def check_submission(
    lookups: RegistryLookups,
    *,
    model: str,
    adapter_ref: str | None,
    formats: list[QuantizationFormat],
    name: str | None,
    submitted_by: str,
) -> tuple[StartQuantization, list[str]]:
    """The command naming the exact artifacts, and the warnings the submitter should read; a problem when the model
    or adapter is unknown, of another kind, revoked, or the adapter was trained on another base."""
    base = usable(await lookups.resolve(ArtifactKind.BASE_MODEL, model, "model"), "model")
    adapter = await adapter_of(lookups, adapter_ref, base) if adapter_ref is not None else None
    if QuantizationFormat.LORA_F16 in formats and adapter is None:
        raise UnusableReference(
            slug="lora-needs-adapter", detail="formats: LORA_F16 exports an adapter", param="adapter"
        )
    command = StartQuantization(
        job_id=new_job_id(),
        submitted_by=submitted_by,
        model=base["id"],
        adapter=adapter["id"] if adapter else None,
        formats=formats,
        name=name,
    )
    parameters = (base.get("metadata") or {}).get("parameters")
    return command, quantization_warnings(formats, int(parameters) if parameters else None)


async def record_submission(
    conn: asyncpg.Connection, bus: Bus, command: StartQuantization, warnings: list[str]
) -> dict[str, Any]:
    job = await insert_job(conn, command, warnings)
    await enqueue(conn, bus, command, correlation_id=command.job_id)
    return job


async def cancel(
    conn: asyncpg.Connection, bus: Bus, job_id: str, *, requested_by: str, role: Role, reason: str
) -> dict[str, Any]:
    """Ask the job's worker to stop, as its submitter or an admin; asking again sends nothing more."""

    def command() -> CancelQuantization:
        return CancelQuantization(job_id=job_id, requested_by=requested_by, reason=reason)

    return await JOBS.cancel(conn, bus, job_id, command, requested_by=requested_by, role=role)
