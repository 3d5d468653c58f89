"""`modelops datasets …` and `modelops artifacts …` against the real gateway and registry: the happy path, the main
error path, and `verify` failing (exit 3) on a tampered download."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ed25519
from gateway.support import sample_files
from modelops_shared.signing.keys import public_pem_of


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for relative, data in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(data)
    return root


async def test_datasets_upload_list_show_rows_query(gateway, cli, tmp_path):
    developer = await gateway.keys.make("developer")
    name = unique("chat")
    rows = [
        {"messages": [{"role": "user", "content": f"hi {i}"}, {"role": "assistant", "content": "ok"}]} for i in range(3)
    ]
    upload = tmp_path / "train.jsonl"
    upload.write_text("".join(json.dumps(row) + "\n" for row in rows))

    uploaded = await cli(developer.secret, "datasets", "upload", name, str(upload), "--schema", "chat", "--json")
    assert uploaded.code == 0, uploaded.err
    assert (json.loads(uploaded.out)["version"], json.loads(uploaded.out)["num_rows"]) == (0, 3)

    listed = await cli(developer.secret, "datasets", "list", "--json")
    assert name in [d["name"] for d in json.loads(listed.out)]
    shown = await cli(developer.secret, "datasets", "show", name)
    assert shown.code == 0
    assert name in shown.out
    page = json.loads((await cli(developer.secret, "datasets", "rows", name, "--limit", "2", "--json")).out)
    assert len(page["rows"]) == 2
    query = await cli(developer.secret, "datasets", "query", name, "SELECT count(*) AS n FROM dataset", "--json")
    assert json.loads(query.out)["rows"] == [{"n": 3}]

    missing = await cli(developer.secret, "datasets", "show", unique("none"))
    assert missing.code == 1
    assert "404" in missing.err
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"messages": [{"role": "robot", "content": "beep"}]}) + "\n")
    rejected = await cli(developer.secret, "datasets", "upload", name, str(bad), "--schema", "chat")
    assert rejected.code == 1
    assert "422" in rejected.err


async def test_artifacts_import_show_lineage_download_verify_promote(gateway, cli, tmp_path):
    developer = await gateway.keys.make("developer")
    approver = await gateway.keys.make("approver")
    base_dir = write_tree(tmp_path / "base", sample_files(unique("base")))
    base_name = unique("base")

    imported = await cli(
        developer.secret, "artifacts", "import", str(base_dir), "--kind", "base_model", "--name", base_name, "--json"
    )
    assert imported.code == 0, imported.err
    base_id = json.loads(imported.out)["id"]
    adapter_dir = write_tree(tmp_path / "adapter", {"adapter_config.json": b"{}", "adapter.safetensors": b"\x01" * 64})
    adapter = await cli(
        developer.secret,
        *("artifacts", "import", str(adapter_dir), "--kind", "adapter", "--name", unique("adapter")),
        *("--parent", f"{base_id}:trained_from", "--json"),
    )
    assert adapter.code == 0, adapter.err
    adapter_id = json.loads(adapter.out)["id"]

    listed = await cli(developer.secret, "artifacts", "list", "--name", base_name, "--json")
    assert [a["id"] for a in json.loads(listed.out)] == [base_id]
    assert json.loads((await cli(developer.secret, "artifacts", "show", base_id, "--json")).out)["id"] == base_id
    tree = await cli(developer.secret, "artifacts", "lineage", adapter_id)
    assert tree.code == 0
    assert base_id in tree.out
    assert "trained_from" in tree.out

    target = tmp_path / "downloaded"
    assert (await cli(developer.secret, "artifacts", "download", base_id, str(target))).code == 0
    assert {p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file()} == set(sample_files("x"))
    assert (await cli(developer.secret, "artifacts", "verify", base_id)).code == 0  # fetches into a temporary dir
    assert (await cli(developer.secret, "artifacts", "verify", base_id, "--dir", str(target))).code == 0
    trusted, stranger = tmp_path / "trusted.pem", tmp_path / "stranger.pem"
    async with gateway.client(developer.secret) as dev:
        trusted.write_text("".join(key["pem"] for key in (await dev.get("/v1/keys")).json()))
    stranger.write_text(public_pem_of(ed25519.Ed25519PrivateKey.generate().public_key()))
    pinned = await cli(developer.secret, "artifacts", "verify", base_id, "--trusted-keys", str(trusted))
    assert pinned.code == 0, pinned.err
    assert (await cli(developer.secret, "artifacts", "verify", base_id, "--trusted-keys", str(stranger))).code == 3

    (target / "config.json").write_bytes(b'{"tampered": true}')
    tampered = await cli(developer.secret, "artifacts", "verify", base_id, "--dir", str(target), "--json")
    assert tampered.code == 3
    assert json.loads(tampered.out) == {
        "artifact_id": base_id,
        "verified": False,
        "problems": ["digest mismatch: config.json"],
    }

    refused = await cli(developer.secret, "artifacts", "promote", base_id, "staging", "--reason", "ready")
    assert refused.code == 1
    assert "403" in refused.err
    promoted = await cli(approver.secret, "artifacts", "promote", base_id, "staging", "--reason", "ready", "--json")
    assert promoted.code == 0, promoted.err
    assert json.loads(promoted.out)["to_stage"] == "staging"
    missing = await cli(developer.secret, "artifacts", "show", "art-does-not-exist")
    assert missing.code == 1
    assert "404" in missing.err
