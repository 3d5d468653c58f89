"""The SDK without a gateway: its generated models match the gateway's OpenAPI document, bundles signed with Ed25519
and ECDSA P-256 verify locally (and tampering does not), and the SSE parser and resumption skip nothing twice."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from modelops_sdk.errors import VerificationFailed
from modelops_sdk.events import Resumption, SseParser
from modelops_sdk.verify import PAYLOAD_TYPE, check_files, pae, verify_bundle

ROOT = Path(__file__).resolve().parents[2]


def test_the_committed_sdk_models_are_generated_from_the_current_gateway():
    checked = subprocess.run([sys.executable, ROOT / "sdk" / "codegen.py", "--check"], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr + " (run `make sdk-models`)"


def _bundle(files: dict[str, bytes], sign) -> dict:
    resources = [{"name": n, "algorithm": "sha256", "digest": hashlib.sha256(d).hexdigest()} for n, d in files.items()]
    root = hashlib.sha256(b"".join(bytes.fromhex(r["digest"]) for r in resources)).hexdigest()
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "a", "digest": {"sha256": root}}],
        "predicateType": "https://model_signing/signature/v1.0",
        "predicate": {"resources": resources},
    }
    payload = json.dumps(statement).encode()
    signature = sign(pae(PAYLOAD_TYPE, payload))
    envelope = {"payloadType": PAYLOAD_TYPE, "payload": base64.b64encode(payload).decode()}
    return {"dsseEnvelope": envelope | {"signatures": [{"sig": base64.b64encode(signature).decode()}]}}


def _pem(key) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.mark.parametrize("algorithm", ["ed25519", "ecdsa-p256"])
def test_bundles_verify_locally_and_tampering_is_found(algorithm, tmp_path):
    if algorithm == "ed25519":
        key = ed25519.Ed25519PrivateKey.generate()
        sign = key.sign
    else:
        key = ec.generate_private_key(ec.SECP256R1())
        sign = lambda message: key.sign(message, ec.ECDSA(hashes.SHA256()))  # noqa: E731
    files = {"config.json": b"{}", "weights/model.bin": b"\x00" * 100}
    bundle = _bundle(files, sign)
    for name, data in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)

    statement = verify_bundle(bundle, [_pem(ed25519.Ed25519PrivateKey.generate()), _pem(key)])
    assert check_files(statement, tmp_path) == []
    (tmp_path / "config.json").write_bytes(b"{ }")
    (tmp_path / "extra.txt").write_bytes(b"")
    assert check_files(statement, tmp_path) == ["unlisted: extra.txt", "digest mismatch: config.json"]

    with pytest.raises(VerificationFailed, match="no signature"):
        verify_bundle(bundle, [_pem(ed25519.Ed25519PrivateKey.generate())])
    forged = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    forged["predicate"]["resources"][0]["digest"] = "00" * 32
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(forged).encode()).decode()
    with pytest.raises(VerificationFailed):
        verify_bundle(bundle, [_pem(key)])


def test_sse_events_are_parsed_and_a_replayed_one_is_dropped():
    event = {"id": 3, "job_id": "j", "type": "progressed", "at": "2026-01-01T00:00:00Z", "data": {"step": 1}}
    parser = SseParser()
    lines = [": ping", "id: 3", "event: progressed", f"data: {json.dumps(event)}", ""]
    parsed = [parser.feed(line) for line in lines]
    assert [p.id if p else None for p in parsed] == [None, None, None, None, 3]
    where = Resumption(last_event_id=2, reconnects=1, backoff_s=0)
    assert [e.id for e in where.seen(parsed)] == [3]
    assert list(where.seen(parsed)) == []  # the same event again after a reconnection
    assert where.last_event_id == 3
