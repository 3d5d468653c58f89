"""Follow several jobs at once with the asyncio client: each stream resumes by itself after a dropped connection
and ends with its job.

    MODELOPS_API_KEY=... python sdk/examples/async_stream.py JOB_ID [JOB_ID…]
"""

from __future__ import annotations

import asyncio
import os
import sys

from modelops_sdk import AsyncClient


async def follow(client: AsyncClient, job_id: str) -> None:
    async for event in client.jobs.stream(job_id):
        step, loss = event.data.get("step"), event.data.get("loss")
        print(f"{job_id} #{event.id} {event.type}" + (f" step {step} loss {loss:.4f}" if loss is not None else ""))


async def main(job_ids: list[str]) -> None:
    url = os.environ.get("MODELOPS_URL", "http://127.0.0.1:8000")
    async with AsyncClient(url, os.environ["MODELOPS_API_KEY"]) as client:
        await asyncio.gather(*(follow(client, job_id) for job_id in job_ids))
        for job_id in job_ids:
            job = await client.jobs.show(job_id)
            print(f"{job.id}: {job.status}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
