"""Live job events for streams: one LISTEN connection per gateway process hears every commit of a job event, on
this replica or another (NOTIFY travels through Postgres), and wakes the streams of that job in this process;
`follow` then reads the events from the table, so what a stream sends is ordered, gapless and never repeated."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import asyncpg

from .store import CHANNEL_SQL, JobEvent, events_after, get_job

log = logging.getLogger(__name__)

RECONNECT_S = 1.0


class JobFeed:
    def __init__(self, pool: asyncpg.Pool, recheck_s: float) -> None:
        self.pool = pool
        self.recheck_s = recheck_s  # a stream re-reads this often without a wake-up, should one be lost
        self._watchers: defaultdict[str, set[asyncio.Event]] = defaultdict(set)

    @classmethod
    @asynccontextmanager
    async def running(cls, pool: asyncpg.Pool, recheck_s: float) -> AsyncIterator[JobFeed]:
        feed = cls(pool, recheck_s)
        task = asyncio.create_task(feed._listen(), name="job-feed")
        try:
            yield feed
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @contextlib.contextmanager
    def watch(self, job_id: str) -> Iterator[asyncio.Event]:
        """An event set whenever one of the job's events commits, while the block runs."""
        woken = asyncio.Event()
        self._watchers[job_id].add(woken)
        try:
            yield woken
        finally:
            self._watchers[job_id].discard(woken)
            if not self._watchers[job_id]:
                del self._watchers[job_id]

    async def follow(self, job_id: str, after: int) -> AsyncIterator[JobEvent]:
        """The job's events after seq `after`, then each as it commits, until the job's terminal event."""
        with self.watch(job_id) as woken:
            while True:
                woken.clear()  # before reading: a commit from now on wakes the wait below
                events = await events_after(self.pool, job_id, after)
                for event in events:
                    yield event
                    after = event.seq
                    if event.terminal:
                        return
                if events:
                    continue  # a page may not have been the last
                job = await get_job(self.pool, job_id)
                if job is None or (job.finished and after >= job.last_seq):
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(woken.wait(), self.recheck_s)

    async def _listen(self) -> None:
        """Hold a LISTEN connection; when it is lost, take another (streams re-read on their own meanwhile)."""
        while True:
            try:
                await self._listen_once()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                log.warning("job event listener lost its connection; reconnecting", exc_info=True)
            await asyncio.sleep(RECONNECT_S)

    async def _listen_once(self) -> None:
        """Listen until the connection is lost."""
        lost = asyncio.Event()
        async with self.pool.acquire() as conn:
            conn.add_termination_listener(lambda _: lost.set())
            channel = await conn.fetchval(f"SELECT {CHANNEL_SQL}")
            await conn.add_listener(channel, self._on_notify)
            self._wake_all()  # what committed while nobody listened
            try:
                await lost.wait()
            finally:
                if not conn.is_closed():
                    await conn.remove_listener(channel, self._on_notify)

    def _on_notify(self, _conn: object, _pid: int, _channel: str, job_id: object) -> None:
        for woken in self._watchers.get(str(job_id), ()):
            woken.set()

    def _wake_all(self) -> None:
        for watchers in self._watchers.values():
            for woken in watchers:
                woken.set()
