"""The job consumer: one consumer group per kind of job on its commands topic, one job at a time per worker,
replicas sharing the partitions. The service's `run` does the job; this decides when, records how it ended, and
makes redelivery, cancels, rebalances and dead workers safe.

Consumes: the commands topic (the service's group). Produces: what the outcome carries (outbox), <commands>.dlq."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from modelops_contracts import Envelope, EnvelopeError, JobStatus, JobUsageRecorded, Message, decode
from opentelemetry import propagate, trace

from ..bus import Bus
from ..bus.access import KafkaAccess
from ..bus.consumer import dead_letter_headers
from ..bus.incarnations import Incarnations, ReadRecreatedFromStart
from ..settings import Settings
from . import ledger
from .cancellation import CancelWatcher
from .commands import JobCommand, JobCommands, Outcome, StopSignal, Transient
from .metrics import JOB_DURATION_SECONDS, JOB_QUEUE_SECONDS, JOBS_FINISHED, JOBS_RUNNING
from .usage import Meter

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

POLL_MS = 500
MAX_BACKOFF_S = 30.0
# What an outage of Postgres or Kafka raises: the command is handled again once they are back, not lost or parked.
INFRASTRUCTURE_ERRORS = (
    asyncpg.PostgresConnectionError,  # connection lost or refused
    asyncpg.exceptions.OperatorInterventionError,  # shutting down, starting up, cannot connect now
    asyncpg.InterfaceError,
    KafkaError,
    ConnectionError,  # a socket refused or reset (not any OSError: a missing file is a bug, not an outage)
    TimeoutError,
)


# Runs one job: (its start command, that command's envelope, its stop signal, this worker's name) → how it ended.
RunJob = Callable[[Any, Envelope, StopSignal, str], Coroutine[Any, Any, Outcome]]


@dataclass
class RunningJob:
    job_id: str
    partition: TopicPartition
    stop: StopSignal


class _KeepJobPartition(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: JobConsumer) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        """Nothing to do yet: with eager rebalancing everything is revoked, and most of it comes straight back."""

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        job = self.owner.current
        if job is None:
            return
        if job.partition not in assigned:
            log.warning("partition of job %s moved to another worker; handing the job over", job.job_id)
            job.stop.hand_off()
        self.owner.consumer.pause(*assigned)


class JobConsumer:
    """Runs the start commands of the partitions assigned to this worker, one job at a time.

    Group membership during long jobs: while a job runs (on a worker thread), every assigned partition is paused
    and the consumer keeps polling. aiokafka heartbeats in the background, and polling paused partitions returns no
    records but keeps `max_poll_interval_ms` from expiring, so a job may run for days without the worker being taken
    for dead and without a rebalance; a worker that really dies stops heartbeating and its partitions move on after
    the session timeout. (The alternative, a `max_poll_interval_ms` longer than any job, would also delay noticing a
    hung worker by that long.)

    Offsets: a job's offset is committed only when the job has ended (completed, failed or cancelled), after its
    outcome and events were recorded in Postgres (outbox) — so a worker dying mid-job gets the command redelivered to
    the next owner of the partition, which resumes from the job's last checkpoint, and a command redelivered after its
    job ended is recognised in the ledger and skipped. That ledger also makes it safe to read a recreated topic from its
    beginning (modelops_shared.bus.incarnations). A job started more than `max_attempts` times (its worker died each
    time: out of memory, a crash) is failed, not retried forever.

    Rebalances: aiokafka's eager protocol revokes every partition and assigns them again; if the running job's
    partition comes back the job just goes on (paused again), otherwise it stops at the next step without recording
    anything, and the partition's new owner resumes it from the checkpoint.
    """

    def __init__(
        self,
        settings: Settings,
        pool: asyncpg.Pool,
        bus: Bus,
        commands: JobCommands,
        run: RunJob,
        *,
        group: str,
        worker: str,
        max_attempts: int,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.bus = bus
        self.commands = commands
        self.run = run
        self.group = group
        self.worker = worker
        self.max_attempts = max_attempts
        self.watcher = CancelWatcher(settings, commands)
        self.current: RunningJob | None = None
        self.consumer = AIOKafkaConsumer(
            **KafkaAccess.of(settings).aiokafka(),
            group_id=group,
            client_id=f"{settings.service_name}-{worker}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=settings.kafka_session_timeout_ms,
            heartbeat_interval_ms=max(settings.kafka_session_timeout_ms // 3, 100),
            fetch_max_wait_ms=100,
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start the cancel watcher, then consuming (jobs start once the watcher has read every earlier cancel)."""
        await self.watcher.start()
        incarnations = Incarnations(self.pool, KafkaAccess.of(self.settings), self.group)
        listener = ReadRecreatedFromStart(incarnations, lambda: self.consumer, then=_KeepJobPartition(self))
        self.consumer.subscribe([self.commands.topic.name], listener=listener)
        await self.consumer.start()
        self._task = asyncio.create_task(self._run(), name="job-consumer")
        self._task.add_done_callback(_report_end)

    async def stop(self) -> None:
        """Stop consuming; a running job stops at its next step, uncommitted, to be resumed from its checkpoint."""
        if self.current:
            self.current.stop.hand_off()
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.consumer.stop()
        await self.watcher.stop()

    async def alive(self) -> bool:
        """For /readyz: false once the consume loop has ended (a bug it could not survive), so the worker is
        restarted instead of looking healthy while it consumes nothing."""
        return self._task is not None and not self._task.done()

    async def _run(self) -> None:
        await self.watcher.caught_up.wait()
        delay = self.settings.consumer_retry_backoff_s
        while True:
            try:
                batch = await self.consumer.getmany(timeout_ms=POLL_MS, max_records=1)
                for tp, records in batch.items():
                    for record in records:
                        await self._handle_again_on_outage(tp, record)
                delay = self.settings.consumer_retry_backoff_s
            except INFRASTRUCTURE_ERRORS as error:
                log.warning("database or broker unavailable (%s); trying again in %.1f s", error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF_S)

    async def _handle_again_on_outage(self, tp: TopicPartition, record: ConsumerRecord[bytes, bytes]) -> None:
        """Handle `record`; if the database or broker fails meanwhile, rewind to it so that it is handled again."""
        try:
            await self._handle(tp, record)
        except INFRASTRUCTURE_ERRORS:
            if tp in self.consumer.assignment():
                self.consumer.seek(tp, record.offset)
            raise

    async def _handle(self, tp: TopicPartition, record: ConsumerRecord[bytes, bytes]) -> None:
        headers = {name: value.decode() for name, value in record.headers}
        try:
            envelope, body = decode(record.key, record.value, headers)
        except EnvelopeError as error:
            await self._undecodable(record, headers, error)
            await self._commit(tp, record)
            return
        if not isinstance(body, self.commands.start):
            await self._commit(tp, record)  # a cancel: the cancel watcher acted on it when it was published
            return
        job_id = cast(JobCommand, body).job_id
        if await ledger.has_ended(self.pool, job_id):
            log.info("job %s already ended; skipping its redelivered command", job_id)
            await self._commit(tp, record)
            return
        # The job continues the trace of the request that submitted it: its events, its outbox messages and the
        # HTTP calls it makes all carry that trace id.
        with tracer.start_as_current_span(
            f"{tp.topic} process",
            context=propagate.extract(headers),
            kind=trace.SpanKind.CONSUMER,
            attributes={
                "messaging.destination.name": tp.topic,
                "modelops.job_id": job_id,
                "modelops.worker": self.worker,
            },
        ):
            await self._handle_start(tp, record, job_id, body, envelope)

    async def _handle_start(
        self, tp: TopicPartition, record: ConsumerRecord[bytes, bytes], job_id: str, body: Message, envelope: Envelope
    ) -> None:
        kind = self.commands.kind
        started = time.monotonic()
        with JOBS_RUNNING.labels(kind).track_inprogress(), Meter() as meter:
            outcome = await self._run_job(tp, job_id, body, envelope)
        if outcome.status is None:
            return  # handed off: recorded and committed by whoever finishes it
        JOB_DURATION_SECONDS.labels(kind, outcome.status.value).observe(time.monotonic() - started)
        JOBS_FINISHED.labels(kind, outcome.status.value).inc()
        # What the job reports it held and processed: `gpus` and `tokens` in its record.
        reading = meter.reading(tokens=int(outcome.record.get("tokens", 0)), gpus=int(outcome.record.get("gpus", 0)))
        usage = JobUsageRecorded(job_id=job_id, kind=kind, worker=self.worker, status=outcome.status, usage=reading)
        recorded = await ledger.finish(
            self.pool,
            self.bus,
            job_id,
            outcome.status,
            [*outcome.events, usage],
            cause=envelope,
            reason=outcome.reason,
            record=outcome.record,
        )
        if not recorded:
            log.info("job %s was ended by another worker meanwhile", job_id)
        await self._commit(tp, record)

    async def _run_job(self, tp: TopicPartition, job_id: str, spec: Message, envelope: Envelope) -> Outcome:
        stop = StopSignal()
        self.current = RunningJob(job_id, tp, stop)
        self.consumer.pause(*self.consumer.assignment())
        try:
            with self.watcher.watch(job_id, lambda cancel: stop.cancel(cancel.reason)) as cancelled:
                if cancelled is not None:
                    return self.commands.cancelled(job_id, cancelled.reason)
                attempts = await ledger.begin(self.pool, job_id, self.worker)
                if attempts is None:
                    return Outcome(None)  # ended by another worker since we looked
                if attempts > self.max_attempts:
                    return self.commands.failed(
                        job_id,
                        "worker_lost",
                        f"the job was started {attempts - 1} times and its worker died each time"
                        " (killed, or out of memory?)",
                    )
                if attempts == 1:  # a job resumed after its worker died has not been waiting all that time
                    waited = (datetime.now(UTC) - envelope.time).total_seconds()
                    JOB_QUEUE_SECONDS.labels(self.commands.kind).observe(max(0.0, waited))
                log.info("starting job %s (attempt %d)", job_id, attempts)
                return await self._work(job_id, spec, envelope, stop)
        finally:
            self.current = None
            self.consumer.resume(*self.consumer.assignment())

    async def _work(self, job_id: str, spec: Message, envelope: Envelope, stop: StopSignal) -> Outcome:
        """Run the job while polling the paused partitions; transient failures retry with backoff, then fail."""
        delay, last = self.settings.consumer_retry_backoff_s, ""
        for attempt in range(self.settings.consumer_max_retries + 1):
            job = asyncio.create_task(self.run(spec, envelope, stop, self.worker))
            while not job.done():
                await self._poll_paused()
            try:
                return job.result()
            except Transient as error:
                log.warning("job %s hit an infrastructure failure (try %d): %s", job_id, attempt + 1, error)
                await asyncio.sleep(delay)
                delay *= 2
                last = str(error)
        return self.commands.failed(job_id, "infrastructure", f"gave up after repeated infrastructure failures: {last}")

    async def _poll_paused(self) -> None:
        stray = await self.consumer.getmany(timeout_ms=POLL_MS)
        # Records can only arrive from a partition assigned a moment before it was paused: put them back.
        for tp, records in stray.items():
            self.consumer.seek(tp, records[0].offset)
            self.consumer.pause(tp)

    async def _undecodable(
        self, record: ConsumerRecord[bytes, bytes], headers: dict[str, str], error: Exception
    ) -> None:
        """A start command whose spec is invalid fails its job (the key is its id); anything else is dead-lettered."""
        if headers.get("ce_type") == self.commands.start.type and record.key:
            job_id, reason = record.key.decode(), f"invalid job spec: {error}"[:2000]
            event = self.commands.failed_event(job_id, "invalid_spec", reason)
            await ledger.finish(self.pool, self.bus, job_id, JobStatus.FAILED, [event], cause=None, reason=reason)
            return
        dlq = dead_letter_headers(headers, record, self.group, error, attempts=1)
        await self.bus.broker.publish(record.value, topic=self.commands.topic.dlq, key=record.key, headers=dlq)

    async def _commit(self, tp: TopicPartition, record: ConsumerRecord[bytes, bytes]) -> None:
        try:
            await self.consumer.commit({tp: record.offset + 1})
        except KafkaError as error:
            # The partition moved meanwhile; the outcome is in the ledger, so its next owner skips the command.
            log.warning("could not commit %s@%d: %s", tp, record.offset, error)
            return
        # The fetch position may lag behind (records buffered before a pause, a partition re-assigned mid-job).
        if tp in self.consumer.assignment():
            self.consumer.seek(tp, record.offset + 1)


def _report_end(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("the job consumer stopped; /readyz now fails", exc_info=task.exception())
