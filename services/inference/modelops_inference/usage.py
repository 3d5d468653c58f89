"""Each deployment's use, reported every MODELOPS_INFERENCE_USAGE_EVERY_S as DeploymentUsageRecorded (through the
outbox): requests and tokens from the serving counters (metrics.py) since the last report; this replica's CPU time,
GPU time and peak memory over the period, shared among its deployments by tokens processed (by requests when no
token was), so that the replica is charged once whatever it serves. When a period cannot be reported (the database
down), its requests and tokens go with the next report."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from datetime import UTC, datetime

import asyncpg
import torch
from modelops_contracts import DeploymentUsageRecorded, ResourceUsage
from modelops_shared.bus import Bus, enqueue
from modelops_shared.jobs.usage import Meter

from . import metrics

log = logging.getLogger(__name__)

# deployment → (requests, prompt tokens, completion tokens)
Counts = dict[str, tuple[int, int, int]]


def counted() -> Counts:
    """The serving counters so far, summed per deployment over its models and outcomes."""
    totals: dict[str, Counter[int]] = {}
    for position, counter in enumerate((metrics.REQUESTS, metrics.TOKENS_IN, metrics.TOKENS_OUT)):
        for metric in counter.collect():
            for sample in metric.samples:
                if sample.name.endswith("_total"):
                    totals.setdefault(sample.labels["deployment"], Counter())[position] += int(sample.value)
    return {name: (c[0], c[1], c[2]) for name, c in totals.items()}


def shares(
    replica: str, began: datetime, ended: datetime, before: Counts, now: Counts, meter: Meter, gpus: int
) -> list[DeploymentUsageRecorded]:
    """One report per deployment that served anything in the period."""
    served = {
        name: tuple(n - b for n, b in zip(counts, before.get(name, (0, 0, 0)), strict=True))
        for name, counts in now.items()
    }
    served = {name: counts for name, counts in served.items() if any(counts)}
    tokens = sum(counts[1] + counts[2] for counts in served.values())
    requests = sum(counts[0] for counts in served.values())
    whole = meter.reading(gpus=gpus)
    reports = []
    for name, (asked, prompt, completion) in served.items():
        share = (prompt + completion) / tokens if tokens else asked / max(requests, 1)
        usage = ResourceUsage(
            wall_seconds=whole.wall_seconds,
            cpu_seconds=whole.cpu_seconds * share,
            gpu_seconds=whole.gpu_seconds * share,
            peak_memory_bytes=int(whole.peak_memory_bytes * share),
            tokens=prompt + completion,
        )
        reports.append(
            DeploymentUsageRecorded(
                deployment=name,
                replica=replica,
                period_start=began,
                period_end=ended,
                requests=asked,
                prompt_tokens=prompt,
                completion_tokens=completion,
                usage=usage,
            )
        )
    return reports


async def reporting(pool: asyncpg.Pool, bus: Bus, replica: str, every_s: float) -> None:
    """Report every `every_s` until cancelled (the period a shutdown cuts short is not reported)."""
    gpus = 1 if torch.cuda.is_available() else 0
    before, began = counted(), datetime.now(UTC)
    while True:
        with Meter() as meter:
            await asyncio.sleep(every_s)
        now, ended = counted(), datetime.now(UTC)
        try:
            async with pool.acquire() as conn, conn.transaction():
                for report in shares(replica, began, ended, before, now, meter, gpus):
                    await enqueue(conn, bus, report)
        except Exception:
            log.exception("could not report usage for %s .. %s; its tokens go with the next report", began, ended)
            continue
        before, began = now, ended
