"""The console's job vocabulary: the four kinds of job, the command that starts one, and the status each of its
events leaves it in. Read from the contracts' message types, so a renamed event cannot silently fall out."""

from __future__ import annotations

from dataclasses import dataclass

from modelops_contracts import (
    EvaluationCancelled,
    EvaluationCompleted,
    EvaluationFailed,
    EvaluationProgressed,
    EvaluationStarted,
    IndexingCancelled,
    IndexingCompleted,
    IndexingFailed,
    IndexingProgressed,
    IndexingStarted,
    JobStatus,
    Message,
    QuantizationCancelled,
    QuantizationCompleted,
    QuantizationFailed,
    QuantizationProgressed,
    QuantizationStarted,
    StartEvaluation,
    StartIndexing,
    StartQuantization,
    StartTraining,
    TrainingCancelled,
    TrainingCheckpointed,
    TrainingCompleted,
    TrainingFailed,
    TrainingProgressed,
    TrainingStarted,
)
from modelops_shared.errors import NotFound


@dataclass(frozen=True)
class JobKind:
    name: str
    start: type[Message]
    running: tuple[type[Message], ...]
    completed: type[Message]
    failed: type[Message]
    cancelled: type[Message]

    def status_after(self, event_type: str) -> JobStatus | None:
        """The status the job is in after an event of `event_type`; None for a type this kind does not know."""
        if event_type == self.start.type:
            return JobStatus.QUEUED
        if any(event_type == message.type for message in self.running):
            return JobStatus.RUNNING
        ends = {
            self.completed.type: JobStatus.COMPLETED,
            self.failed.type: JobStatus.FAILED,
            self.cancelled.type: JobStatus.CANCELLED,
        }
        return ends.get(event_type)

    @property
    def event_types(self) -> list[str]:
        return [m.type for m in (self.start, *self.running, self.completed, self.failed, self.cancelled)]


JOB_KINDS = (
    JobKind(
        "training",
        StartTraining,
        (TrainingStarted, TrainingProgressed, TrainingCheckpointed),
        TrainingCompleted,
        TrainingFailed,
        TrainingCancelled,
    ),
    JobKind(
        "quantization",
        StartQuantization,
        (QuantizationStarted, QuantizationProgressed),
        QuantizationCompleted,
        QuantizationFailed,
        QuantizationCancelled,
    ),
    JobKind(
        "evaluation",
        StartEvaluation,
        (EvaluationStarted, EvaluationProgressed),
        EvaluationCompleted,
        EvaluationFailed,
        EvaluationCancelled,
    ),
    JobKind(
        "indexing",
        StartIndexing,
        (IndexingStarted, IndexingProgressed),
        IndexingCompleted,
        IndexingFailed,
        IndexingCancelled,
    ),
)
JOB_KIND_BY_START = {kind.start.type: kind for kind in JOB_KINDS}


def job_status(kind: JobKind, event_types: list[str]) -> JobStatus:
    """A job's status from its events' types in order: a terminal status sticks (a late progress report after the
    outcome changes nothing)."""
    status = JobStatus.QUEUED
    for event_type in event_types:
        after = kind.status_after(event_type)
        if after is not None and not status.is_terminal:
            status = after
    return status


def service_of(source: str | None) -> str | None:
    """The service a CloudEvents source names (`/services/trainer` → trainer)."""
    return source.rstrip("/").rsplit("/", 1)[-1] if source else None


def trace_id_of(traceparent: str | None) -> str | None:
    """The trace id of a W3C `traceparent` (version-traceid-spanid-flags), if it is one."""
    parts = (traceparent or "").split("-")
    if len(parts) == 4 and len(parts[1]) == 32 and parts[1] != "0" * 32:
        return parts[1].lower()
    return None


class FlowNotFound(NotFound):
    """No message the console recorded belongs to this job or correlation id."""

    slug = "flow-not-found"

    def __init__(self, flow_id: str) -> None:
        super().__init__(f"no recorded message belongs to {flow_id!r} (recorded messages are kept for a while only)")


class TopicNotFound(NotFound):
    slug = "topic-not-found"

    def __init__(self, topic: str) -> None:
        super().__init__(f"{topic} is no topic of the catalog")
