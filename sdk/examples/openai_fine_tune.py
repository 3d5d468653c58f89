"""The same fine-tune with the official `openai` client, unchanged, pointed at the gateway: upload the training file,
create the job on a base model the registry knows (by name), and poll it with its events.

    MODELOPS_API_KEY=... python sdk/examples/openai_fine_tune.py BASE_MODEL_NAME TRAIN.jsonl
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from openai import OpenAI

FINISHED = {"succeeded", "failed", "cancelled"}


def main(base_model: str, training_file: Path) -> None:
    gateway = os.environ.get("MODELOPS_URL", "http://127.0.0.1:8000")
    client = OpenAI(base_url=f"{gateway}/v1", api_key=os.environ["MODELOPS_API_KEY"])
    uploaded = client.files.create(file=training_file, purpose="fine-tune")
    job = client.fine_tuning.jobs.create(model=base_model, training_file=uploaded.id, suffix="example")
    seen: set[str] = set()
    while job.status not in FINISHED:
        time.sleep(2)
        job = client.fine_tuning.jobs.retrieve(job.id)
        for event in reversed(client.fine_tuning.jobs.list_events(job.id, limit=20).data):
            if event.id not in seen:
                seen.add(event.id)
                print(event.created_at, event.message)
    print(f"{job.id}: {job.status}, model {job.fine_tuned_model}")


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
