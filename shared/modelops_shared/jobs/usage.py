"""A job's resource use, measured around it in its worker: CPU-seconds of this process and of every child process it
waited for (a distributed job's ranks, a converter's interpreter), peak resident memory of the process and its live
children sampled twice a second, wall time; GPU-seconds and tokens come from what the job reports it held and
processed. The worker runs one job at a time, so the process's use while the job runs is the job's."""

from __future__ import annotations

import threading
import time
from types import TracebackType

import psutil
from modelops_contracts import ResourceUsage

SAMPLE_EVERY_S = 0.5


class Meter:
    """`with Meter() as meter: …` around a job, then `meter.reading(...)`."""

    def __init__(self, every_s: float = SAMPLE_EVERY_S) -> None:
        self.every_s = every_s
        self.process = psutil.Process()
        self.peak = 0
        self._done = threading.Event()
        self._sampler = threading.Thread(target=self._sample_until_done, name="usage-meter", daemon=True)
        self._began = self._ended = 0.0
        self._cpu_began = self._cpu_ended = 0.0

    def __enter__(self) -> Meter:
        self._began, self._cpu_began = time.monotonic(), self._cpu()
        self._sample()
        self._sampler.start()
        return self

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._done.set()
        self._sampler.join()
        self._sample()
        self._ended, self._cpu_ended = time.monotonic(), self._cpu()

    def reading(self, *, tokens: int = 0, gpus: int = 0) -> ResourceUsage:
        wall = self._ended - self._began
        return ResourceUsage(
            wall_seconds=wall,
            cpu_seconds=max(0.0, self._cpu_ended - self._cpu_began),
            gpu_seconds=wall * gpus,
            peak_memory_bytes=self.peak,
            tokens=tokens,
        )

    def _cpu(self) -> float:
        try:
            times = self.process.cpu_times()
        except psutil.Error:  # measuring must never cost the job: a reading it cannot take is 0
            return self._cpu_began
        return float(times.user + times.system + times.children_user + times.children_system)

    def _sample_until_done(self) -> None:
        while not self._done.wait(self.every_s):
            self._sample()

    def _sample(self) -> None:
        try:
            resident = self.process.memory_info().rss
            children = self.process.children(recursive=True)
        except psutil.Error:
            return
        for child in children:
            try:
                resident += child.memory_info().rss
            except psutil.Error:  # gone meanwhile, or not ours to read
                continue
        self.peak = max(self.peak, resident)
