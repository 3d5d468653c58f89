"""What the registry does with each consumed event: log it, project it, and decide submissions.

A submission is decided once: the stored files are re-hashed, streaming; any mismatch rejects it; otherwise
an in-toto statement over every file is signed into a DSSE bundle, stored, and the artifact registered. The
decision is logged and published (through the outbox) under one envelope, so the log replays it as decided.

Consumes: artifacts.submissions.v1, training.commands.v1, training.events.v1, datasets.events.v1,
deployments.commands.v1, deployments.events.v1. Produces: registry.artifacts.v1.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from datetime import UTC, datetime

import asyncpg
from modelops_contracts import (
    ArtifactPromoted,
    ArtifactRegistered,
    ArtifactRejected,
    ArtifactSubmitted,
    Envelope,
    LineageRelation,
    Message,
    Stage,
)
from modelops_shared.bus import Bus, MessageContext, enqueue
from modelops_shared.storage import ObjectNotFound, ObjectStore, StoreError

from . import eventlog
from .domain import Policy, PolicyViolation, PromotionRequest, check_promotion
from .keys import KeyRing
from .projections import project
from .signing import build_statement, sign, sign_record

log = logging.getLogger(__name__)

BUNDLES_PREFIX = "registry/bundles"


class Rejection(Exception):
    """Why a submission cannot be registered."""


async def record(conn: asyncpg.Connection, bus: Bus, envelope: Envelope, message: Message, *, publish: bool) -> bool:
    """Log and project one event in the caller's transaction (and publish it when the registry decided it);
    False when the event was already logged."""
    logged = await eventlog.append(conn, envelope, message)
    if logged is None:
        return False
    await project(conn, logged)
    if publish:
        await enqueue(conn, bus, message, envelope=envelope)
    return True


class Registrar:
    def __init__(self, store: ObjectStore, keys: KeyRing) -> None:
        self.store = store
        self.keys = keys

    async def handle(self, message: Message, ctx: MessageContext) -> None:
        if not await record(ctx.conn, ctx.bus, ctx.envelope, message, publish=False):
            return  # a redelivery: its effects are already committed
        if not isinstance(message, ArtifactSubmitted):
            return
        status = await ctx.conn.fetchval("SELECT status FROM submissions WHERE artifact_id = $1", message.artifact_id)
        if status != "pending":
            return  # the same artifact id submitted again: the first decision stands
        decision = await self.decide(ctx.conn, message)
        await record(ctx.conn, ctx.bus, ctx.bus.envelope_for(decision, causation=ctx.envelope), decision, publish=True)

    async def decide(
        self, conn: asyncpg.Connection, submission: ArtifactSubmitted
    ) -> ArtifactRegistered | ArtifactRejected:
        try:
            prefix = self._prefix_of(submission.uri)
            await self._check_files(prefix, submission)
            parents = await self._parents(conn, submission)
            version = await self._version(conn, submission)
        except Rejection as rejection:
            log.warning("rejected %s: %s", submission.artifact_id, rejection)
            return ArtifactRejected(artifact_id=submission.artifact_id, reason=str(rejection))
        base_model_digest = next(
            (p["digest"] for p in parents if p["relation"] == LineageRelation.TRAINED_FROM.value), None
        )
        statement = build_statement(
            submission.name,
            submission.files,
            {
                "artifact_id": submission.artifact_id,
                "kind": submission.kind.value,
                "version": version,
                "base_model_digest": base_model_digest,
                "parents": parents,
                "job_id": submission.job_id,
                "metrics": submission.metrics,
            },
        )
        bundle = sign(statement, self.keys.active)
        bundle_key = f"{BUNDLES_PREFIX}/{submission.artifact_id}.sigstore.json"
        await self.store.put(bundle_key, json.dumps(bundle, indent=2).encode())
        return ArtifactRegistered(
            artifact_id=submission.artifact_id,
            kind=submission.kind,
            name=submission.name,
            version=version,
            # The digest of exactly the bytes that were signed: the DSSE payload.
            digest=hashlib.sha256(base64.b64decode(bundle["dsseEnvelope"]["payload"])).hexdigest(),
            size=sum(f.size for f in submission.files),
            uri=submission.uri,
            bundle_uri=self.store.url_of(bundle_key),
            key_id=self.keys.active.key_id,
        )

    def _prefix_of(self, uri: str) -> str:
        try:
            return self.store.key_of(uri)
        except StoreError as error:
            raise Rejection(f"files are not in the registry's object store: {error}") from None

    async def _check_files(self, prefix: str, submission: ArtifactSubmitted) -> None:
        for expected in submission.files:
            hasher, size = hashlib.sha256(), 0
            try:
                async for chunk in self.store.stream(f"{prefix}/{expected.path}"):
                    hasher.update(chunk)
                    size += len(chunk)
            except ObjectNotFound:
                raise Rejection(f"{expected.path}: missing from {submission.uri}") from None
            except StoreError as error:
                raise Rejection(f"{expected.path}: {error}") from None
            if size != expected.size:
                raise Rejection(f"{expected.path}: size {size} != declared {expected.size}")
            if hasher.hexdigest() != expected.sha256:
                raise Rejection(f"{expected.path}: sha256 {hasher.hexdigest()} != declared {expected.sha256}")

    async def _parents(self, conn: asyncpg.Connection, submission: ArtifactSubmitted) -> list[dict[str, str]]:
        parents = []
        for parent in submission.parents:
            row = await conn.fetchrow("SELECT digest, stage FROM artifacts WHERE id = $1", parent.artifact_id)
            if row is None:
                raise Rejection(f"parent {parent.artifact_id} ({parent.relation}) is not a registered artifact")
            if row["stage"] == "revoked":
                raise Rejection(f"parent {parent.artifact_id} is revoked")
            parents.append(
                {"artifact_id": parent.artifact_id, "relation": parent.relation.value, "digest": row["digest"]}
            )
        return parents

    async def _version(self, conn: asyncpg.Connection, submission: ArtifactSubmitted) -> str:
        kind, name = submission.kind.value, submission.name
        if submission.version is not None:
            taken = await conn.fetchval(
                "SELECT 1 FROM artifacts WHERE kind = $1 AND name = $2 AND version = $3", kind, name, submission.version
            )
            if taken:
                raise Rejection(f"{kind} {name} version {submission.version} already exists")
            return submission.version
        versions = {
            r["version"]
            for r in await conn.fetch("SELECT version FROM artifacts WHERE kind = $1 AND name = $2", kind, name)
        }
        number = len(versions) + 1
        while str(number) in versions:  # an explicit version may have taken the next number
            number += 1
        return str(number)


class PromotionError(Exception):
    """The artifact does not exist (`missing`) or the rules refuse the move."""

    def __init__(self, message: str, *, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing


async def promote(
    conn: asyncpg.Connection,
    bus: Bus,
    keys: KeyRing,
    policy: Policy,
    artifact_id: str,
    *,
    to_stage: Stage,
    actor: str,
    actor_role: str,
    reason: str,
) -> ArtifactPromoted:
    """Check the move against the policy, sign it, and log, project and publish it in the caller's transaction."""
    row = await conn.fetchrow(
        "SELECT a.kind, a.stage, a.metrics, coalesce(j.submitted_by, a.created_by) AS submitter"
        " FROM artifacts a LEFT JOIN jobs j ON j.id = a.job_id WHERE a.id = $1 FOR UPDATE OF a",
        artifact_id,
    )
    if row is None:
        raise PromotionError(f"no artifact {artifact_id}", missing=True)
    current = Stage(row["stage"])
    request = PromotionRequest(
        kind=row["kind"],
        current=current,
        target=to_stage,
        actor=actor,
        actor_role=actor_role,
        submitter=row["submitter"],
        metrics=row["metrics"],
    )
    try:
        check_promotion(policy, request)
    except PolicyViolation as violation:
        raise PromotionError(str(violation)) from None
    at = datetime.now(UTC)
    signed = {
        "artifact_id": artifact_id,
        "from_stage": current.value,
        "to_stage": to_stage.value,
        "actor": actor,
        "reason": reason,
        "at": at.isoformat(),
    }
    key_id, signature = sign_record(signed, keys.active)
    event = ArtifactPromoted(
        artifact_id=artifact_id,
        from_stage=current,
        to_stage=to_stage,
        actor=actor,
        reason=reason,
        at=at,
        key_id=key_id,
        signature=signature,
    )
    await record(conn, bus, bus.envelope_for(event, correlation_id=artifact_id), event, publish=True)
    return event
