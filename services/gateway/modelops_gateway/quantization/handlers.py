"""What each quantization event does to its job: the gateway's projection of quantization.events.v1, run by an
IdempotentConsumer in the transaction that also records the message as processed.

Consumes: quantization.events.v1 (consumer group: `<gateway schema>-quantization`)."""

from __future__ import annotations

import logging
from typing import Any

from modelops_contracts import (
    JobStatus,
    Message,
    QuantizationCancelled,
    QuantizationCompleted,
    QuantizationFailed,
    QuantizationProgressed,
    QuantizationStarted,
)
from modelops_shared.bus import MessageContext

from .store import JOBS

log = logging.getLogger(__name__)


def changes_of(message: Message, at: Any) -> dict[str, Any]:
    """The job columns an event sets; nothing for a message that is not a quantization event."""
    match message:
        case QuantizationStarted():
            return {
                "status": JobStatus.RUNNING,
                "worker": message.worker,
                "done": len(message.resumed),
                "started_at": at,
            }
        case QuantizationProgressed():
            return {"status": JobStatus.RUNNING, "stage": message.stage, "done": message.done}
        case QuantizationCompleted():
            outputs = [output.model_dump(mode="json") for output in message.outputs]
            done = {"status": JobStatus.COMPLETED, "stage": None, "done": len(outputs), "outputs": outputs}
            return {**done, "finished_at": at}
        case QuantizationFailed():
            failure = {"failure_reason": message.reason, "error_type": message.error_type}
            return {"status": JobStatus.FAILED, "stage": None, **failure, "finished_at": at}
        case QuantizationCancelled():
            return {"status": JobStatus.CANCELLED, "stage": None, "finished_at": at}
    return {}


async def project(message: Message, context: MessageContext) -> None:
    """Record the event on its job; events of jobs another gateway submitted, or after the job ended, change nothing."""
    changes = changes_of(message, context.envelope.time)
    job_id = getattr(message, "job_id", None)
    if changes and job_id and not await JOBS.update(context.conn, job_id, changes):
        log.debug("ignoring %s of job %s: not ours, or already ended", message.type, job_id)
