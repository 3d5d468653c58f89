"""Registry bundles checked by outside verifiers: OpenSSF `model_signing` (P-256) and bare `cryptography` (Ed25519)."""

import base64
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from modelops_contracts import FileDigest
from modelops_shared.signing.bundles import build_statement, sign
from modelops_shared.signing.keys import KeyRing

PREDICATE = {"kind": "adapter", "base_model_digest": "ab" * 32, "parents": [], "job_id": "job-1", "metrics": {}}
MODEL_SIGNING = Path(sys.executable).with_name("model_signing")


def _artifact(root: Path, files: dict[str, bytes]) -> list[FileDigest]:
    """Write `files` under `root` and digest them the way the registry does: every file, sha256, '/'-separated."""
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return [
        FileDigest(
            path=p.relative_to(root).as_posix(),
            sha256=hashlib.sha256(p.read_bytes()).hexdigest(),
            size=p.stat().st_size,
        )
        for p in sorted(root.rglob("*"))
        if p.is_file()
    ]


FILES = {
    "model.safetensors": bytes(range(256)) * 64,
    "config.json": b'{"hidden_size": 64}',
    "tokenizer/vocab.txt": b"hello\nworld\n",
}


def _model_signing_verify(bundle: Path, public_key: Path, model: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [str(MODEL_SIGNING), "verify", "key", "--signature", str(bundle), "--public_key", str(public_key)]
    return subprocess.run([*command, *extra, str(model)], capture_output=True, text=True, timeout=120, check=False)


def _sign_artifact(tmp_path: Path, ring: KeyRing, files: dict[str, bytes]) -> tuple[Path, Path, Path]:
    """The registry's side: digest, build, sign; then what a user downloads: the files, the bundle, the PEM."""
    model = tmp_path / "model"
    bundle = sign(build_statement("model", _artifact(model, files), PREDICATE), ring.active)
    bundle_path = tmp_path / "model.sigstore.json"
    bundle_path.write_text(json.dumps(bundle))
    pem_path = tmp_path / "registry.pub.pem"
    pem_path.write_text(ring.public_key(ring.active.key_id).pem)
    return model, bundle_path, pem_path


def test_model_signing_cli_verifies_a_p256_bundle_and_catches_one_flipped_byte(tmp_path: Path):
    ring = KeyRing.load_or_create(tmp_path / "keys", "ecdsa-p256")
    model, bundle, pem = _sign_artifact(tmp_path, ring, FILES)

    result = _model_signing_verify(bundle, pem, model)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Verification succeeded" in result.stdout

    target = model / "tokenizer" / "vocab.txt"
    content = bytearray(target.read_bytes())
    content[3] ^= 0x01
    target.write_bytes(bytes(content))
    result = _model_signing_verify(bundle, pem, model)
    assert result.returncode != 0
    assert "tokenizer/vocab.txt" in result.stderr


def test_model_signing_cli_verifies_a_bundle_signed_before_rotation_with_the_retired_key(tmp_path: Path):
    ring = KeyRing.load_or_create(tmp_path / "keys", "ecdsa-p256")
    model, bundle, _ = _sign_artifact(tmp_path, ring, FILES)
    retired = ring.active.key_id
    ring.rotate("ecdsa-p256")
    pem = tmp_path / "retired.pub.pem"
    pem.write_text(ring.public_key(retired).pem)

    result = _model_signing_verify(bundle, pem, model)
    assert result.returncode == 0, result.stdout + result.stderr


def test_git_metadata_files_are_signed_and_need_no_ignore_git_paths(tmp_path: Path):
    # Hugging Face snapshots ship a .gitattributes; the registry signs it like any file, and model_signing skips
    # git files unless told otherwise.
    ring = KeyRing.load_or_create(tmp_path / "keys", "ecdsa-p256")
    model, bundle, pem = _sign_artifact(tmp_path, ring, {**FILES, ".gitattributes": b"*.bin filter=lfs\n"})

    assert _model_signing_verify(bundle, pem, model).returncode != 0
    result = _model_signing_verify(bundle, pem, model, "--no-ignore-git-paths")
    assert result.returncode == 0, result.stdout + result.stderr


def _verify_with_cryptography_only(bundle: dict, public_pem: bytes, model: Path) -> None:
    """An outside verifier: DSSE PAE by hand, Ed25519 via `cryptography`, then each file against its digest."""
    envelope = bundle["dsseEnvelope"]
    payload = base64.b64decode(envelope["payload"])
    payload_type = envelope["payloadType"].encode()
    message = b"DSSEv1 " + b" ".join(
        [str(len(payload_type)).encode(), payload_type, str(len(payload)).encode(), payload]
    )
    public_key = serialization.load_pem_public_key(public_pem)
    assert isinstance(public_key, ed25519.Ed25519PublicKey)
    public_key.verify(base64.b64decode(envelope["signatures"][0]["sig"]), message)

    statement = json.loads(payload)
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    resources = statement["predicate"]["resources"]
    root = hashlib.sha256(b"".join(bytes.fromhex(r["digest"]) for r in resources)).hexdigest()
    assert statement["subject"][0]["digest"]["sha256"] == root
    on_disk = {p.relative_to(model).as_posix() for p in model.rglob("*") if p.is_file()}
    assert {r["name"] for r in resources} == on_disk
    for resource in resources:
        assert resource["algorithm"] == "sha256"
        assert hashlib.sha256((model / resource["name"]).read_bytes()).hexdigest() == resource["digest"]


def test_ed25519_bundle_verifies_with_nothing_but_cryptography(tmp_path: Path):
    ring = KeyRing.load_or_create(tmp_path / "keys", "ed25519")
    model, bundle_path, pem_path = _sign_artifact(tmp_path, ring, FILES)
    bundle = json.loads(bundle_path.read_text())

    _verify_with_cryptography_only(bundle, pem_path.read_bytes(), model)
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    assert {k: statement["predicate"][k] for k in PREDICATE} == PREDICATE

    tampered = json.loads(bundle_path.read_text())
    statement["predicate"]["resources"][0]["digest"] = "00" * 32
    tampered["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    with pytest.raises(InvalidSignature):
        _verify_with_cryptography_only(tampered, pem_path.read_bytes(), model)

    (model / "config.json").write_bytes(b'{"hidden_size": 65}')
    with pytest.raises(AssertionError):
        _verify_with_cryptography_only(bundle, pem_path.read_bytes(), model)
