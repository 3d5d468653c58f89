"""What the registry does with each batch of consumed events: log them, project them, and decide submissions.

Consumes: artifacts.submissions.v1, training.commands.v1, training.events.v1, datasets.events.v1,
deployments.commands.v1, deployments.events.v1. Produces: registry.artifacts.v1."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

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
from modelops_shared.bus import Bus, Delivery, enqueue_many
from modelops_shared.signing import KeyRing, SigningKey, build_statement, sign, sign_record
from modelops_shared.storage import ObjectNotFound, ObjectStore, StoreError
from modelops_shared.telemetry import current_trace_headers
from opentelemetry import propagate, trace

from .domain import Policy, PolicyViolation, PromotionRequest, Report, check_promotion
from .metrics import PROJECTION_LAG_SECONDS
from .store import eventlog, queries
from .store.projections import Projector

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

IO_CONCURRENCY = 16
T = TypeVar("T")

Decision = ArtifactRegistered | ArtifactRejected


class Rejection(Exception):
    """Why a submission cannot be registered."""


async def record(
    conn: asyncpg.Connection,
    bus: Bus,
    events: Sequence[tuple[Envelope, Message]],
    projector: Projector | None = None,
    traces: Mapping[str, dict[str, str]] | None = None,
) -> None:
    """Log, project and publish events the registry itself decided, in the caller's transaction.

    Pass the projector that projected the batch the decisions answer: it still holds the batch's submissions,
    which a registration's projection would otherwise read back from the database one by one; and the trace
    headers each decision continues, by envelope id (the current span's otherwise).
    """
    logged = await eventlog.append(conn, events)
    await (projector or Projector(conn)).add_all(logged)
    await enqueue_many(conn, [(event.envelope, event.body) for event in logged], traces)


def _decision_trace(submission_headers: dict[str, str], decision: Decision) -> dict[str, str]:
    """A span for the decision in the submitter's trace (a job's adapter registers in that job's trace, whichever
    batch carried it); the trace headers its event continues."""
    with tracer.start_as_current_span(
        f"registry {type(decision).__name__}",
        context=propagate.extract(submission_headers),
        attributes={"modelops.artifact_id": decision.artifact_id},
    ):
        return current_trace_headers()


@dataclass
class _Known:
    """What the batch's decisions read: artifacts already registered, and each (kind, name)'s versions."""

    artifacts: dict[str, tuple[str, str]]  # id → (digest, stage)
    versions: dict[tuple[str, str], set[str]]


class Registrar:
    """Logs and projects each consumed batch, and decides its submissions.

    A submission is decided once: the stored files are re-hashed, streaming; any mismatch rejects it; otherwise
    an in-toto statement over every file is signed into a DSSE bundle and the artifact registered, the bundle inside
    the event. Each decision is logged and published (through the outbox) under one envelope, so the log replays it
    as decided, signatures included. A batch's file checks run concurrently; decisions are made in log order.
    """

    def __init__(self, store: ObjectStore, keys: KeyRing, bus: Bus, public_url: str) -> None:
        self.store = store
        self.keys = keys
        self.bus = bus
        self.public_url = public_url.rstrip("/")
        self._io = asyncio.Semaphore(IO_CONCURRENCY)

    async def handle(self, conn: asyncpg.Connection, deliveries: Sequence[Delivery]) -> None:
        logged = await eventlog.append(conn, [(d.envelope, d.body) for d in deliveries])  # redeliveries drop out
        projector = Projector(conn)
        await projector.add_all(logged)
        projected_at = datetime.now(UTC)
        for event in logged:
            lag = (projected_at - event.envelope.time).total_seconds()
            PROJECTION_LAG_SECONDS.labels(event.envelope.type).observe(max(0.0, lag))
        submitted = [(e.envelope, e.body) for e in logged if isinstance(e.body, ArtifactSubmitted)]
        pending = await self._still_pending(conn, submitted)
        if not pending:
            return
        decisions = await self._decide(conn, [submission for _, submission in pending])
        trace_of = {d.envelope.id: d.headers for d in deliveries}
        events, traces = [], {}
        for (cause, _), decision in zip(pending, decisions, strict=True):
            envelope = self.bus.envelope_for(decision, causation=cause)
            events.append((envelope, decision))
            traces[envelope.id] = _decision_trace(trace_of[cause.id], decision)
        await record(conn, self.bus, events, projector, traces)

    async def _still_pending(
        self, conn: asyncpg.Connection, submitted: list[tuple[Envelope, Any]]
    ) -> list[tuple[Envelope, ArtifactSubmitted]]:
        """Submissions nobody decided yet; an artifact id submitted again keeps its first decision."""
        if not submitted:
            return []
        ids = [s.artifact_id for _, s in submitted]
        rows = await conn.fetch("SELECT artifact_id, status FROM submissions WHERE artifact_id = any($1::text[])", ids)
        status = {row["artifact_id"]: row["status"] for row in rows}
        pending, seen = [], set()
        for envelope, submission in submitted:
            if status.get(submission.artifact_id) == "pending" and submission.artifact_id not in seen:
                seen.add(submission.artifact_id)
                pending.append((envelope, submission))
        return pending

    async def _decide(self, conn: asyncpg.Connection, submissions: list[ArtifactSubmitted]) -> list[Decision]:
        file_problems = await asyncio.gather(*(self._bounded(self._check_files(s)) for s in submissions))
        known = await self._known(conn, submissions)
        key = self.keys.active  # read once per batch (each read checks the key ring on disk); a rotation applies next
        decisions: list[Decision] = []
        for submission, problem in zip(submissions, file_problems, strict=True):
            try:
                if problem:
                    raise Rejection(problem)
                registered = self._register(submission, known, key)
            except Rejection as rejection:
                log.warning("rejected %s: %s", submission.artifact_id, rejection)
                decisions.append(ArtifactRejected(artifact_id=submission.artifact_id, reason=str(rejection)))
                continue
            known.artifacts[registered.artifact_id] = (registered.digest, Stage.DEV.value)
            decisions.append(registered)
        return decisions

    async def _bounded(self, work: Awaitable[T]) -> T:
        async with self._io:
            return await work

    async def _known(self, conn: asyncpg.Connection, submissions: list[ArtifactSubmitted]) -> _Known:
        parent_ids = list({p.artifact_id for s in submissions for p in s.parents})
        rows = await conn.fetch("SELECT id, digest, stage FROM artifacts WHERE id = any($1::text[])", parent_ids)
        kinds, names = zip(*{(s.kind.value, s.name) for s in submissions}, strict=True)
        versions = await conn.fetch(
            "SELECT kind, name, version FROM artifacts"
            " WHERE (kind, name) IN (SELECT * FROM unnest($1::text[], $2::text[]))",
            list(kinds),
            list(names),
        )
        known = _Known({row["id"]: (row["digest"], row["stage"]) for row in rows}, {})
        for row in versions:
            known.versions.setdefault((row["kind"], row["name"]), set()).add(row["version"])
        return known

    def _register(self, submission: ArtifactSubmitted, known: _Known, key: SigningKey) -> ArtifactRegistered:
        parents = []
        for parent in submission.parents:
            digest, stage = known.artifacts.get(parent.artifact_id, (None, None))
            if digest is None:
                raise Rejection(f"parent {parent.artifact_id} ({parent.relation}) is not a registered artifact")
            if stage == Stage.REVOKED.value:
                raise Rejection(f"parent {parent.artifact_id} is revoked")
            parents.append({"artifact_id": parent.artifact_id, "relation": parent.relation.value, "digest": digest})
        version = self._version(submission, known.versions.setdefault((submission.kind.value, submission.name), set()))
        base_model_digest = next((p["digest"] for p in parents if p["relation"] == LineageRelation.TRAINED_FROM), None)
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
                "metadata": submission.metadata,  # provenance (source, sha256 of an imported file, licence) is signed
            },
        )
        bundle = sign(statement, key)
        return ArtifactRegistered(
            artifact_id=submission.artifact_id,
            kind=submission.kind,
            name=submission.name,
            version=version,
            # The digest of exactly the bytes that were signed: the DSSE payload.
            digest=hashlib.sha256(base64.b64decode(bundle["dsseEnvelope"]["payload"])).hexdigest(),
            size=sum(f.size for f in submission.files),
            uri=submission.uri,
            bundle_uri=f"{self.public_url}/v1/artifacts/{submission.artifact_id}/bundle",
            key_id=key.key_id,
            bundle=bundle,
        )

    @staticmethod
    def _version(submission: ArtifactSubmitted, taken: set[str]) -> str:
        if submission.version is not None:
            if submission.version in taken:
                raise Rejection(f"{submission.kind} {submission.name} version {submission.version} already exists")
            version = submission.version
        else:
            number = len(taken) + 1
            while str(number) in taken:  # an explicit version may have taken the next number
                number += 1
            version = str(number)
        taken.add(version)
        return version

    async def _check_files(self, submission: ArtifactSubmitted) -> str | None:
        """Why the stored files differ from the declared ones, or None when every byte matches."""
        try:
            prefix = self.store.key_of(submission.uri)
        except StoreError as error:
            return f"files are not in the registry's object store: {error}"
        for expected in submission.files:
            try:
                sha256, size = await self.store.sha256(f"{prefix}/{expected.path}")
            except ObjectNotFound:
                return f"{expected.path}: missing from {submission.uri}"
            except StoreError as error:
                return f"{expected.path}: {error}"
            if size != expected.size:
                return f"{expected.path}: size {size} != declared {expected.size}"
            if sha256 != expected.sha256:
                return f"{expected.path}: sha256 {sha256} != declared {expected.sha256}"
        return None


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
    request_id: str | None = None,
) -> ArtifactPromoted:
    """Check the move against the policy, sign it, and log, project and publish it in the caller's transaction. A
    `request_id` that already made a promotion of this artifact gets that promotion back, and nothing moves again."""
    row = await conn.fetchrow(
        "SELECT a.kind, a.stage, a.metrics, coalesce(j.submitted_by, a.created_by) AS submitter"
        " FROM artifacts a LEFT JOIN jobs j ON j.id = a.job_id WHERE a.id = $1 FOR UPDATE OF a",
        artifact_id,
    )
    if row is None:
        raise PromotionError(f"no artifact {artifact_id}", missing=True)
    # Looked up under the artifact's lock, so two deliveries of one request cannot both miss it.
    earlier = await _promotion_of_request(conn, artifact_id, request_id) if request_id is not None else None
    if earlier is not None:
        if earlier.to_stage != to_stage:
            raise PromotionError(f"request {request_id} already moved {artifact_id} to {earlier.to_stage}")
        return earlier
    current = Stage(row["stage"])
    reports, incumbents = await _reports(conn, policy, artifact_id, row["kind"], to_stage)
    request = PromotionRequest(
        kind=row["kind"],
        current=current,
        target=to_stage,
        actor=actor,
        actor_role=actor_role,
        submitter=row["submitter"],
        metrics=row["metrics"],
        reports=reports,
        incumbents=incumbents,
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
        request_id=request_id,
    )
    await record(conn, bus, [(bus.envelope_for(event, correlation_id=artifact_id), event)])
    return event


async def _reports(
    conn: asyncpg.Connection, policy: Policy, artifact_id: str, kind: str, target: Stage
) -> tuple[list[Report], list[Report]]:
    """The signed eval reports the target stage's rules read: the artifact's, and those of what is there now."""
    rule = policy.rules.get(target)
    if rule is None or not any(kind in evaluation.kinds for evaluation in rule.evaluations):
        return [], []
    mine = await queries.eval_reports(conn, artifact_id)
    theirs = await queries.incumbent_reports(conn, artifact_id, target.value)
    return [_report(row) for row in mine], [_report(row) for row in theirs]


def _report(row: dict[str, Any]) -> Report:
    return Report(id=row["id"], suite=row["suite"] or "", metrics=row["metrics"])


async def _promotion_of_request(conn: asyncpg.Connection, artifact_id: str, request_id: str) -> ArtifactPromoted | None:
    row = await conn.fetchrow(
        "SELECT artifact_id, from_stage, to_stage, actor, reason, at, key_id, signature, request_id FROM promotions"
        " WHERE artifact_id = $1 AND request_id = $2",
        artifact_id,
        request_id,
    )
    return None if row is None else ArtifactPromoted.model_validate(dict(row))
