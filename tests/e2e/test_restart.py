"""The embedded stack restarted as a user restarts it (`modelops-stack down`, then `up`) loses nothing: the broker
comes back empty, every partition starts again at offset 0, and what is published afterwards must still be consumed
by every consumer, including those that remember positions of their own (the registry's)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import httpx
import pytest
from modelops_sdk import Client
from platforms import Platform

ROWS = [
    {"messages": [{"role": "user", "content": f"What comes after {n}?"}, {"role": "assistant", "content": str(n + 1)}]}
    for n in range(8)
]


def _one_of_everything(client: Client, base_id: str, tag: str, scratch: Path) -> dict[str, str]:
    """An artifact import, a dataset upload and a short training job; each must end up registered."""
    files = scratch / f"import-{tag}"
    files.mkdir()
    (files / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"], "tag": tag}))
    (files / "model.safetensors").write_bytes(tag.encode() * 4096)
    (files / "tokenizer.json").write_text(json.dumps({"version": "1.0", "tag": tag}))
    imported = client.artifacts.import_dir(files, kind="base_model", name=f"restart-import-{tag}")

    rows = scratch / f"rows-{tag}.jsonl"
    rows.write_text("".join(json.dumps(row) + "\n" for row in ROWS))
    dataset = client.datasets.upload(f"restart-{tag}", "chat", rows)
    accepted = client.jobs.train(
        base_model=base_id,
        dataset=dataset.name,
        dataset_version=dataset.version,
        method="sft",
        quantization="none",
        adapter={"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]},
        hyperparameters={"max_steps": 4, "learning_rate": 1e-3, "batch_size": 4, "seq_len": 64, "seed": 0},
    )
    job = client.jobs.wait(accepted.id)
    assert job.status == "completed", job.failure
    assert job.adapter_artifact_id is not None
    for artifact_id in (imported.id, job.adapter_artifact_id):
        assert client.artifacts.wait_registered(artifact_id, timeout_s=120).id == artifact_id
    assert client.datasets.show(dataset.name).version == dataset.version
    return {"import": imported.id, "dataset": dataset.name, "job": job.id, "adapter": job.adapter_artifact_id}


@pytest.mark.timeout(1200)  # two stack starts and one stop, two short jobs on 2 cores
def test_everything_published_after_a_restart_registers_and_replay_equals_the_live_state(
    platform: Platform, tmp_path: Path
):
    booted = platform.run(sys.executable, "-m", "modelops_trainer", "bootstrap-base", "--wait")
    found = re.search(r"submitted base_model (\S+)", booted.stdout)
    assert found, booted.stdout
    base_id = found.group(1)
    with Client(platform.url, platform.key, timeout=60) as client:
        before = _one_of_everything(client, base_id, "before", tmp_path)

    stopped = platform.stack("down")
    assert "drained: nothing in flight" in stopped.stdout, stopped.stdout
    platform.stack("up")

    with Client(platform.url, platform.key, timeout=60) as client:
        after = _one_of_everything(client, base_id, "after", tmp_path)
        for artifact_id in (before["import"], before["adapter"]):
            assert client.artifacts.show(artifact_id).id == artifact_id  # still there, still served
        assert client.jobs.show(before["job"]).status == "completed"

    registry = platform.env["MODELOPS_REGISTRY_URL"]
    live = httpx.get(f"{registry}/v1/state-digest", timeout=30).json()["state_digest"]
    replayed = platform.run(sys.executable, "-m", "modelops_registry", "replay", timeout=600)
    assert replayed.stdout.split("state digest: ")[1].strip() == live
    assert after["adapter"] != before["adapter"]
