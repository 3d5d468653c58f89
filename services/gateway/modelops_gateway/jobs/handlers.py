"""What each training event does to its job: the gateway's projection of training.events.v1, run by an
IdempotentConsumer in the transaction that also records the message as processed. A job created to be deployed
when it succeeds (through the OpenAI fine-tuning API) has its adapter deployed in that same transaction: a Deploy of
`ft-<job id>` staged in the outbox, once, however often its TrainingCompleted is delivered.

Consumes: training.events.v1 (consumer group: the gateway's schema name, `gateway`).
Produces: deployments.commands.v1 (Deploy), through the outbox."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from modelops_contracts import (
    Deploy,
    Message,
    TrainingCancelled,
    TrainingCompleted,
    TrainingEventType,
    TrainingFailed,
    TrainingProgressed,
    TrainingStarted,
)
from modelops_shared.bus import MessageContext

from ..deployments.store import stage_deploy
from .store import get_job, record_event

log = logging.getLogger(__name__)


def change_of(message: Message, at: datetime) -> tuple[TrainingEventType, dict[str, Any]]:
    """The job event's type and the job columns it sets: the status its type leaves the job in (contracts say
    which), and what it reports. A checkpoint changes no column; any other message is a ValueError."""
    event = TrainingEventType.of(message)
    match message:
        case TrainingStarted():
            reported = {
                "worker": message.worker,
                "total_steps": message.total_steps,
                "step": message.resumed_from_step,
                "started_at": at,
            }
        case TrainingProgressed():
            reported = {
                "step": message.step,
                "total_steps": message.total_steps,
                "loss": message.loss,
                "learning_rate": message.learning_rate,
                "tokens_per_second": message.tokens_per_second,
                "estimated_finish": at + timedelta(seconds=message.eta_seconds),
            }
        case TrainingCompleted():
            reported = {
                "step": message.steps,
                "metrics": message.metrics,
                "adapter_artifact_id": message.adapter_artifact_id,
                "estimated_finish": None,
                "finished_at": at,
            }
        case TrainingFailed():
            reported = {
                "failure_reason": message.reason,
                "error_type": message.error_type,
                "estimated_finish": None,
                "finished_at": at,
            }
        case TrainingCancelled():
            reported = {"estimated_finish": None, "finished_at": at}
        case _:
            return event, {}
    return event, {"status": event.status, **reported}


async def project(message: Message, context: MessageContext) -> None:
    """Record the event on its job. Events of jobs another deployment submitted (the topic is shared) and events
    after a job finished change nothing."""
    event_type, changes = change_of(message, context.envelope.time)
    data = message.model_dump(mode="json")
    job_id = data.pop("job_id")
    seq = await record_event(
        context.conn,
        job_id,
        event_type,
        data,
        at=context.envelope.time,
        message_id=context.envelope.id,
        changes=changes,
    )
    if seq is None:
        log.debug("ignoring %s of job %s: not ours, or already finished", event_type, job_id)
    elif isinstance(message, TrainingCompleted):
        await deploy_if_wanted(message, context)


def deployment_name(job_id: str) -> str:
    """The deployment serving a job's adapter: `ft-<job id>` (a gateway job id is 31 characters of [a-z0-9-])."""
    return f"ft-{job_id}"


async def deploy_if_wanted(completed: TrainingCompleted, context: MessageContext) -> None:
    """Stage a Deploy of the job's adapter on the exact base model it was trained on, requested by the job's
    submitter, when the job was created to be deployed. The inference service waits for the registry to register
    the adapter, which the trainer submitted just before this event."""
    job = await get_job(context.conn, completed.job_id)
    if job is None or not job.deploy_when_completed:
        return
    command = Deploy(
        name=deployment_name(job.id),
        base_model=job.base_model_id,
        adapters=[completed.adapter_artifact_id],
        requested_by=job.submitted_by,
    )
    await stage_deploy(context.conn, context.bus, command, causation=context.envelope)
