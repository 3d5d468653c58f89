"""The same fine-tune with the official `openai` client, unchanged, pointed at the gateway: upload the training file,
create the job on a base model the registry knows (by name or artifact id), follow its events, deploy the adapter
it produced, and ask the fine-tuned model (`ft:…`) a question.

    MODELOPS_API_KEY=... python sdk/examples/openai_fine_tune.py BASE_MODEL TRAIN.jsonl [--epochs N]

OpenAI has no deployments API: the gateway serves an `ft:` model once a deployment holds its adapter, so the
example deploys it through the same client's plain `post` to the gateway's `/v1/deployments`. Exits 0 once the
fine-tuned model answered, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from openai import OpenAI
from openai.types.fine_tuning import FineTuningJob

FINISHED = {"succeeded", "failed", "cancelled"}


def follow(client: OpenAI, job_id: str, poll_s: float) -> tuple[FineTuningJob, str | None]:
    """Poll the job until it finishes, printing each new event; the job, and the adapter its completion reported."""
    seen: set[str] = set()
    adapter = None
    while True:
        job = client.fine_tuning.jobs.retrieve(job_id)
        for event in reversed(client.fine_tuning.jobs.list_events(job_id, limit=50).data):
            if event.id not in seen:
                seen.add(event.id)
                if isinstance(event.data, dict):
                    adapter = event.data.get("adapter_artifact_id", adapter)
                print(event.created_at, event.type, event.message, flush=True)
        if job.status in FINISHED:
            return job, adapter
        time.sleep(poll_s)


def deploy(client: OpenAI, name: str, base_model: str, adapter_id: str, timeout_s: float = 300) -> dict[str, Any]:
    client.post("/deployments", body={"name": name, "base_model": base_model, "adapters": [adapter_id]}, cast_to=object)
    deadline = time.monotonic() + timeout_s
    while True:
        view: Any = client.get(f"/deployments/{name}", cast_to=object)
        if view["status"] == "ready" and adapter_id in (view.get("adapter_ids") or []):
            return dict(view)
        if view["status"] == "failed" or time.monotonic() > deadline:
            sys.exit(f"deployment {name}: {view['status']} {view.get('reason') or ''}")
        time.sleep(0.5)


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
    job, adapter = follow(client, job.id, args.poll_s)
    print(f"{job.id}: {job.status}, model {job.fine_tuned_model}")
    if job.status != "succeeded" or not job.fine_tuned_model or not adapter:
        return 1

    deployment = deploy(client, args.deployment, job.model, adapter)
    print(f"deployment {args.deployment} ready: {deployment.get('models')}")
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
    parser.add_argument("--deployment", default="example-ft")
    parser.add_argument("--question", default="What comes after a?")
    parser.add_argument("--poll-s", type=float, default=2.0)
    sys.exit(main(parser.parse_args()))
