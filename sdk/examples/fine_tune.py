"""Fine-tune end to end with the SDK: import a base model, upload a chat dataset, train, follow the job's progress,
then verify the adapter it produced locally. Run against `make up`:

    MODELOPS_API_KEY=$(cat .modelops/admin.key) python sdk/examples/fine_tune.py BASE_MODEL_DIR DATASET.jsonl
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from modelops_sdk import Client
from modelops_sdk.verify import check_files, verify_bundle


def main(model_dir: Path, dataset_file: Path) -> None:
    with Client(os.environ.get("MODELOPS_URL", "http://127.0.0.1:8000"), os.environ["MODELOPS_API_KEY"]) as client:
        base = client.artifacts.import_dir(model_dir, kind="base_model", name=model_dir.name)
        client.artifacts.wait_registered(base.id)
        dataset = client.datasets.upload("example-chat", "chat", dataset_file)
        print(f"dataset {dataset.name} v{dataset.version}: {dataset.num_rows} rows")

        job = client.jobs.train(base_model=base.id, dataset=dataset.name, hyperparameters={"max_steps": 50})
        done = client.jobs.wait(job.id, lambda event: print(event.type, event.data.get("step"), event.data.get("loss")))
        print(f"job {done.id}: {done.status}, adapter {done.adapter_artifact_id}")
        if done.adapter_artifact_id is None:
            sys.exit(1)

        # Trust nothing but the registry's public keys: check the signature and every file here.
        keys = [key["pem"] for key in client.artifacts.signing_keys()]
        statement = verify_bundle(client.artifacts.bundle(done.adapter_artifact_id), keys)
        with tempfile.TemporaryDirectory() as scratch:
            client.artifacts.download(done.adapter_artifact_id, Path(scratch))
            problems = check_files(statement, Path(scratch))
        print("verified" if not problems else f"NOT verified: {problems}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
