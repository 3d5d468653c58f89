"""What each evaluation event does to its job: the gateway's projection of evaluation.events.v1, run by an
IdempotentConsumer in the transaction that also records the message as processed.

Consumes: evaluation.events.v1 (consumer group: `<gateway schema>-evaluation`)."""

from __future__ import annotations

import logging
from typing import Any

from modelops_contracts import (
    EvaluationCancelled,
    EvaluationCompleted,
    EvaluationFailed,
    EvaluationProgressed,
    EvaluationStarted,
    JobStatus,
    Message,
)
from modelops_shared.bus import MessageContext

from .store import JOBS

log = logging.getLogger(__name__)


def changes_of(message: Message, at: Any) -> dict[str, Any]:
    """The job columns an event sets; nothing for a message that is not an evaluation event."""
    match message:
        case EvaluationStarted():
            return {"status": JobStatus.RUNNING, "worker": message.worker, "total": message.items, "started_at": at}
        case EvaluationProgressed():
            return {"status": JobStatus.RUNNING, "done": message.done, "total": message.total}
        case EvaluationCompleted():
            done = {"status": JobStatus.COMPLETED, "done": message.items, "total": message.items}
            return {**done, "report_id": message.report_id, "metrics": message.metrics, "finished_at": at}
        case EvaluationFailed():
            failure = {"failure_reason": message.reason, "error_type": message.error_type}
            return {"status": JobStatus.FAILED, **failure, "finished_at": at}
        case EvaluationCancelled():
            return {"status": JobStatus.CANCELLED, "finished_at": at}
    return {}


async def project(message: Message, context: MessageContext) -> None:
    """Record the event on its job; events of jobs another gateway submitted, or after the job ended, change nothing."""
    changes = changes_of(message, context.envelope.time)
    job_id = getattr(message, "job_id", None)
    if changes and job_id and not await JOBS.update(context.conn, job_id, changes):
        log.debug("ignoring %s of job %s: not ours, or already ended", message.type, job_id)
