"""Fine-tune end to end with the SDK: import a base model, upload a chat dataset, train, follow the job's progress,
then verify the adapter it produced locally. Run against `make up`:

    export MODELOPS_API_KEY=$(cat .modelops/admin.key)
    python sdk/examples/fine_tune.py BASE_MODEL_DIR DATASET.jsonl [--max-steps N] [--dataset-name NAME]

Exits 0 once the job completed and its adapter verified, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from modelops_sdk import Client
from modelops_sdk.events import JobEvent
from modelops_sdk.models import JobStatus
from modelops_sdk.verify import check_files, verify_bundle


def show(event: JobEvent) -> None:
    step, loss = event.data.get("step"), event.data.get("loss")
    print(f"#{event.id} {event.type}" + (f" step {step} loss {loss:.4f}" if loss is not None else ""), flush=True)


def main(model_dir: Path, dataset_file: Path, max_steps: int, dataset_name: str) -> int:
    with Client(os.environ.get("MODELOPS_URL", "http://127.0.0.1:8000"), os.environ["MODELOPS_API_KEY"]) as client:
        base = client.artifacts.import_dir(model_dir, kind="base_model", name=model_dir.name)
        client.artifacts.wait_registered(base.id)
        dataset = client.datasets.upload(dataset_name, "chat", dataset_file)
        print(f"dataset {dataset.name} v{dataset.version}: {dataset.num_rows} rows")

        job = client.jobs.train(base_model=base.id, dataset=dataset.name, hyperparameters={"max_steps": max_steps})
        done = client.jobs.wait(job.id, show)
        print(f"job {done.id}: {done.status}, adapter {done.adapter_artifact_id}")
        if done.status != JobStatus.completed or done.adapter_artifact_id is None:
            return 1

        # Trust nothing but the registry's public keys: check the signature and every file here.
        client.artifacts.wait_registered(done.adapter_artifact_id, timeout_s=120)
        keys = [key.pem for key in client.artifacts.signing_keys()]
        statement = verify_bundle(client.artifacts.bundle(done.adapter_artifact_id), keys)
        with tempfile.TemporaryDirectory() as scratch:
            client.artifacts.download(done.adapter_artifact_id, Path(scratch))
            problems = check_files(statement, Path(scratch))
        print(f"adapter {done.adapter_artifact_id} verified" if not problems else f"NOT verified: {problems}")
        return 1 if problems else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir", type=Path, help="a local Hugging Face causal LM (its name names the artifact)")
    parser.add_argument("dataset_file", type=Path, help="chat JSONL in OpenAI's fine-tuning format")
    parser.add_argument("--max-steps", type=int, default=50)
    parser.add_argument("--dataset-name", default="example-chat")
    args = parser.parse_args()
    sys.exit(main(args.model_dir, args.dataset_file, args.max_steps, args.dataset_name))
