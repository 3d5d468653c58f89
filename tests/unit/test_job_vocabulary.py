"""The job vocabulary in contracts: statuses, timeline event types, which of them end a job, and which entry each
training message makes. Their values are stored and sent as plain strings, so those are pinned too."""

from __future__ import annotations

import pytest
from modelops_contracts import (
    TERMINAL_JOB_STATUSES,
    CancelTraining,
    Hyperparameters,
    JobStatus,
    Message,
    StartTraining,
    TrainingCancelled,
    TrainingCheckpointed,
    TrainingCompleted,
    TrainingEventType,
    TrainingFailed,
    TrainingProgressed,
    TrainingStarted,
)

JOB = "job-1"


def test_the_values_are_the_strings_stored_and_sent() -> None:
    assert [str(s) for s in JobStatus] == ["queued", "running", "completed", "failed", "cancelled"]
    assert [str(t) for t in TrainingEventType] == [
        "queued",
        "started",
        "progressed",
        "checkpointed",
        "completed",
        "failed",
        "cancelled",
    ]
    assert JobStatus("completed") == "completed"


def test_completed_failed_and_cancelled_end_a_job() -> None:
    assert {s for s in JobStatus if s.is_terminal} == TERMINAL_JOB_STATUSES
    assert {"completed", "failed", "cancelled"} == TERMINAL_JOB_STATUSES
    assert not JobStatus.QUEUED.is_terminal
    assert not JobStatus.RUNNING.is_terminal
    assert {t for t in TrainingEventType if t.is_terminal} == {"completed", "failed", "cancelled"}


@pytest.mark.parametrize(
    ("message", "event_type", "status"),
    [
        (
            StartTraining(
                job_id=JOB,
                submitted_by="dev",
                base_model="tiny",
                dataset="d",
                dataset_version=0,
                hyperparameters=Hyperparameters(max_steps=1),
            ),
            TrainingEventType.QUEUED,
            JobStatus.QUEUED,
        ),
        (TrainingStarted(job_id=JOB, worker="w", total_steps=3), TrainingEventType.STARTED, JobStatus.RUNNING),
        (
            TrainingProgressed(
                job_id=JOB, step=1, total_steps=3, loss=1.0, learning_rate=0.1, tokens_per_second=1, eta_seconds=1
            ),
            TrainingEventType.PROGRESSED,
            JobStatus.RUNNING,
        ),
        (TrainingCheckpointed(job_id=JOB, step=1, uri="file:///c"), TrainingEventType.CHECKPOINTED, JobStatus.RUNNING),
        (
            TrainingCompleted(job_id=JOB, adapter_artifact_id="a", steps=3, duration_seconds=1),
            TrainingEventType.COMPLETED,
            JobStatus.COMPLETED,
        ),
        (TrainingFailed(job_id=JOB, reason="r"), TrainingEventType.FAILED, JobStatus.FAILED),
        (TrainingCancelled(job_id=JOB), TrainingEventType.CANCELLED, JobStatus.CANCELLED),
    ],
)
def test_each_training_message_makes_one_timeline_entry(
    message: Message, event_type: TrainingEventType, status: JobStatus
) -> None:
    assert TrainingEventType.of(message) is event_type
    assert event_type.status is status


def test_a_cancel_command_is_no_timeline_entry() -> None:
    with pytest.raises(ValueError, match="not a training event"):
        TrainingEventType.of(CancelTraining(job_id=JOB, requested_by="dev"))
