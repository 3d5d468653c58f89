"""Follow several jobs at once with the asyncio client: each stream resumes by itself after a dropped connection
and ends with its job. Exits 0 once every job completed, 1 otherwise.

    MODELOPS_API_KEY=... python sdk/examples/async_stream.py JOB_ID [JOB_ID…]
"""

from __future__ import annotations

import asyncio
import os
import sys

from modelops_sdk import AsyncClient
from modelops_sdk.models import JobStatus


async def follow(client: AsyncClient, job_id: str) -> None:
    async for event in client.jobs.stream(job_id):
        step, loss = event.data.get("step"), event.data.get("loss")
        line = f"{job_id} #{event.id} {event.type}" + (f" step {step} loss {loss:.4f}" if loss is not None else "")
        print(line, flush=True)


async def main(job_ids: list[str]) -> int:
    url = os.environ.get("MODELOPS_URL", "http://127.0.0.1:8000")
    async with AsyncClient(url, os.environ["MODELOPS_API_KEY"]) as client:
        await asyncio.gather(*(follow(client, job_id) for job_id in job_ids))
        jobs = [await client.jobs.show(job_id) for job_id in job_ids]
    for job in jobs:
        print(f"{job.id}: {job.status}")
    return 0 if all(job.status == JobStatus.completed for job in jobs) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
