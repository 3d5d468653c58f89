"""The same fine-tune with the official `openai` client, unchanged, pointed at the gateway: upload the training file,
create the job on a base model the registry knows (by name or artifact id), follow its events, wait for the
fine-tuned model (`ft:…`) to be served, and ask it a question.

    MODELOPS_API_KEY=... python sdk/examples/openai_fine_tune.py BASE_MODEL TRAIN.jsonl [--epochs N]

As with OpenAI, nothing is deployed by hand: when the job succeeds the gateway deploys its adapter (as `ft-<job id>`),
and the `ft:` model shows in `models.list()` once the inference service has loaded it. Exits 0 once the fine-tuned
model answered, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from openai import OpenAI
from openai.types.fine_tuning import FineTuningJob

FINISHED = {"succeeded", "failed", "cancelled"}


def follow(client: OpenAI, job_id: str, poll_s: float) -> FineTuningJob:
    """Poll the job until it finishes, printing each new event."""
    seen: set[str] = set()
    while True:
        job = client.fine_tuning.jobs.retrieve(job_id)
        for event in reversed(client.fine_tuning.jobs.list_events(job_id, limit=50).data):
            if event.id not in seen:
                seen.add(event.id)
                print(event.created_at, event.type, event.message, flush=True)
        if job.status in FINISHED:
            return job
        time.sleep(poll_s)


def wait_served(client: OpenAI, model: str, poll_s: float, timeout_s: float) -> bool:
    """Whether `model` appears among the served models within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while model not in {served.id for served in client.models.list()}:
        if time.monotonic() > deadline:
            return False
        time.sleep(poll_s)
    return True


def main(args: argparse.Namespace) -> int:
    gateway = os.environ.get("MODELOPS_URL", "http://127.0.0.1:8000")
    client = OpenAI(base_url=f"{gateway}/v1", api_key=os.environ["MODELOPS_API_KEY"])
    uploaded = client.files.create(file=args.training_file, purpose="fine-tune")
    job = client.fine_tuning.jobs.create(
        model=args.base_model,
        training_file=uploaded.id,
        suffix=args.suffix,
        method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": args.epochs}}},
    )
    job = follow(client, job.id, args.poll_s)
    print(f"{job.id}: {job.status}, model {job.fine_tuned_model}")
    if job.status != "succeeded" or not job.fine_tuned_model:
        return 1

    if not wait_served(client, job.fine_tuned_model, args.poll_s, args.serve_timeout_s):
        print(f"{job.fine_tuned_model} is not served after {args.serve_timeout_s} s")
        return 1
    print(f"{job.fine_tuned_model} is served")
    reply = client.chat.completions.create(
        model=job.fine_tuned_model,
        messages=[{"role": "user", "content": args.question}],
        max_tokens=8,
    )
    print(f"{reply.model} says: {reply.choices[0].message.content!r}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("base_model", help="the base model's registry name or artifact id")
    parser.add_argument("training_file", type=Path, help="chat JSONL in OpenAI's fine-tuning format")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--suffix", default="example")
    parser.add_argument("--serve-timeout-s", type=float, default=300.0, help="how long to wait for the ft: model")
    parser.add_argument("--question", default="What comes after a?")
    parser.add_argument("--poll-s", type=float, default=2.0)
    sys.exit(main(parser.parse_args()))
