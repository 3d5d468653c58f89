"""How a running job learns of its cancellation within a second, although its cancel command queues behind it.

Consumes: the job kind's commands topic (its cancel commands only, no group)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import cast

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from modelops_contracts import EnvelopeError, decode

from ..bus.access import KafkaAccess
from ..settings import Settings
from .commands import CancelCommand, JobCommands

log = logging.getLogger(__name__)

Listener = Callable[[CancelCommand], None]


class CancelWatcher:
    """Reads every cancel command without a group, and stops a watched job the moment its cancel is read.

    The gateway keys a cancel by job id, so it lands on the same partition as the job's start command, behind it:
    the job consumer, busy with that very job, would only reach it after the job ended. So each worker also reads the
    commands topic with a second consumer of its own — no group (every partition assigned, nothing committed), from the
    beginning — and keeps the ids of every cancelled job. A running job registered with `watch` is stopped the moment
    its cancel is read; a job whose cancel was read before it started never trains. Reading from the beginning (the
    topic carries commands only, so it is small) covers cancels published while this worker was down; `caught_up` says
    the watcher has read everything that existed when it started, and the job consumer waits for it before starting
    anything.
    """

    def __init__(self, settings: Settings, commands: JobCommands) -> None:
        self.commands = commands
        self.consumer = AIOKafkaConsumer(
            **KafkaAccess.of(settings).aiokafka(),
            group_id=None,
            enable_auto_commit=False,
            client_id=f"{settings.service_name}-cancel-watcher",
            fetch_max_wait_ms=100,
        )
        self.cancelled: dict[str, CancelCommand] = {}
        self.caught_up = asyncio.Event()
        self._listeners: dict[str, Listener] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.consumer.start()
        topic = self.commands.topic
        partitions = [TopicPartition(topic.name, p) for p in range(topic.partitions)]
        self.consumer.assign(partitions)
        await self.consumer.seek_to_beginning(*partitions)
        ends = await self.consumer.end_offsets(partitions)
        self._task = asyncio.create_task(self._run(ends), name="cancel-watcher")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.consumer.stop()

    @contextlib.contextmanager
    def watch(self, job_id: str, listener: Listener) -> Iterator[CancelCommand | None]:
        """Call `listener` when `job_id` is cancelled while the block runs; yields the cancel if it already came."""
        self._listeners[job_id] = listener
        try:
            yield self.cancelled.get(job_id)
        finally:
            self._listeners.pop(job_id, None)

    async def _run(self, ends: dict[TopicPartition, int]) -> None:
        while True:
            batch = await self.consumer.getmany(timeout_ms=200)
            for records in batch.values():
                for record in records:
                    self._read(record)
            if not self.caught_up.is_set():
                positions = {tp: await self.consumer.position(tp) for tp in ends}
                if all(positions[tp] >= end for tp, end in ends.items()):
                    self.caught_up.set()

    def _read(self, record: ConsumerRecord[bytes, bytes]) -> None:
        headers = {name: value.decode() for name, value in record.headers}
        if headers.get("ce_type") != self.commands.cancel.type:
            return
        try:
            _, message = decode(record.key, record.value, headers)
        except EnvelopeError:
            return  # the job consumer dead-letters it; here it cancels nothing
        cancel = cast(CancelCommand, message)  # the commands' cancel type
        self.cancelled[cancel.job_id] = cancel
        listener = self._listeners.get(cancel.job_id)
        if listener:
            log.info("job %s cancelled by %s", cancel.job_id, cancel.requested_by)
            listener(cancel)
