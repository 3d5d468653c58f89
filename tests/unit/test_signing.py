"""Registry signing: key ring lifecycle and secrecy, manifest statements, DSSE bundles and signed records."""

import base64
import copy
import hashlib
import json
import logging
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import rfc8785
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from modelops_contracts import FileDigest
from modelops_shared.signing.bundles import (
    PREDICATE_TYPE,
    SignatureError,
    build_statement,
    pae,
    sign,
    sign_record,
    verify,
    verify_record,
)
from modelops_shared.signing.keys import ALGORITHMS, KeyRing, KeyRingError

PREDICATE = {"kind": "adapter", "base_model_digest": "ab" * 32, "parents": [], "job_id": "job-1", "metrics": {}}


def _digest(path: str, content: bytes) -> FileDigest:
    return FileDigest(path=path, sha256=hashlib.sha256(content).hexdigest(), size=len(content))


FILES = [_digest("weights.bin", b"w" * 100), _digest("config.json", b"{}"), _digest("tok/vocab.txt", b"a\nb\n")]


def _spki_sha256(pem: str) -> str:
    der = serialization.load_pem_public_key(pem.encode()).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_first_start_creates_a_0600_key_whose_id_is_the_sha256_of_its_der_spki(tmp_path: Path, algorithm):
    directory = tmp_path / "keys"
    ring = KeyRing.load_or_create(directory, algorithm)

    (public,) = ring.public_keys()
    assert public.active
    assert public.algorithm == ring.active.algorithm == algorithm
    assert public.key_id == ring.active.key_id == _spki_sha256(public.pem)
    assert public.pem.startswith("-----BEGIN PUBLIC KEY-----")
    assert _mode(directory) == 0o700
    (private_file,) = directory.glob("*.key.pem")
    assert private_file.name == f"{public.key_id}.key.pem"
    assert _mode(private_file) == 0o600
    assert ring.public_key(public.key_id) == public


def test_load_or_create_is_idempotent(tmp_path: Path):
    first = KeyRing.load_or_create(tmp_path, "ed25519")
    files = sorted(p.name for p in tmp_path.iterdir())

    second = KeyRing.load_or_create(tmp_path, "ed25519")

    assert second.public_keys() == first.public_keys()
    assert second.active.key_id == first.active.key_id
    assert sorted(p.name for p in tmp_path.iterdir()) == files


def test_processes_starting_together_agree_on_one_first_key(tmp_path: Path):
    with ThreadPoolExecutor(max_workers=4) as pool:
        rings = list(pool.map(lambda _: KeyRing.load_or_create(tmp_path, "ed25519"), range(8)))

    assert len({ring.active.key_id for ring in rings}) == 1
    assert len(rings[0].public_keys()) == 1
    assert len(list(tmp_path.glob("*.key.pem"))) == 1


def test_an_existing_key_of_another_algorithm_stays_active_until_rotated(tmp_path: Path, caplog):
    ring = KeyRing.load_or_create(tmp_path, "ed25519")

    reloaded = KeyRing.load_or_create(tmp_path, "ecdsa-p256")

    assert reloaded.active.key_id == ring.active.key_id
    assert "rotate" in caplog.text
    reloaded.rotate("ecdsa-p256")
    assert KeyRing.load_or_create(tmp_path, "ecdsa-p256").active.algorithm == "ecdsa-p256"


def test_a_rotation_by_another_process_is_picked_up_without_a_restart(tmp_path: Path):
    running = KeyRing.load_or_create(tmp_path, "ed25519")
    old = running.active.key_id

    new = KeyRing.load_or_create(tmp_path, "ed25519").rotate("ecdsa-p256")

    assert running.active.key_id == new.key_id
    assert [k.key_id for k in running.public_keys()] == [old, new.key_id]


def test_a_private_key_readable_by_others_is_refused(tmp_path: Path):
    ring = KeyRing.load_or_create(tmp_path, "ed25519")
    (tmp_path / f"{ring.active.key_id}.key.pem").chmod(0o644)
    with pytest.raises(KeyRingError, match="0600"):
        KeyRing.load_or_create(tmp_path, "ed25519")


def test_rotation_keeps_old_public_keys_and_old_bundles_verify(tmp_path: Path):
    ring = KeyRing.load_or_create(tmp_path, "ed25519")
    old = ring.active.key_id
    old_bundle = sign(build_statement("m", FILES, PREDICATE), ring.active)

    new = ring.rotate("ecdsa-p256")

    assert new.algorithm == "ecdsa-p256"
    assert new.key_id == ring.active.key_id != old
    assert [(k.key_id, k.active) for k in ring.public_keys()] == [(old, False), (new.key_id, True)]
    # Only the active private key stays on disk; retired ones are never needed again.
    assert [p.name for p in tmp_path.glob("*.key.pem")] == [f"{new.key_id}.key.pem"]
    assert verify(old_bundle, ring.public_key(old).pem)["subject"][0]["name"] == "m"
    with pytest.raises(SignatureError):
        verify(old_bundle, new.pem)
    reloaded = KeyRing.load_or_create(tmp_path, "ecdsa-p256")
    assert reloaded.public_keys() == ring.public_keys()
    assert reloaded.active.key_id == new.key_id


def test_unknown_key_id_is_a_key_error(tmp_path: Path):
    ring = KeyRing.load_or_create(tmp_path, "ed25519")
    with pytest.raises(KeyError):
        ring.public_key("0" * 64)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_no_private_key_material_in_reprs_or_logs(tmp_path: Path, caplog, algorithm):
    caplog.set_level(logging.DEBUG)
    ring = KeyRing.load_or_create(tmp_path, algorithm)
    secrets = [(tmp_path / f"{ring.active.key_id}.key.pem").read_text()]
    ring.rotate(algorithm)
    secrets.append((tmp_path / f"{ring.active.key_id}.key.pem").read_text())
    sign(build_statement("m", FILES, PREDICATE), ring.active)
    logging.getLogger("test").info("ring %s key %s keys %s", ring, ring.active, ring.public_keys())

    shown = caplog.text + repr(ring) + str(ring) + repr(ring.active) + str(ring.active) + repr(ring.public_keys())
    assert ring.active.key_id in shown
    assert "PRIVATE" not in shown
    for pem in secrets:
        assert not any(line in shown for line in pem.splitlines()[1:-1])
        scalar = _secret_scalar(pem)
        assert scalar.hex() not in shown
        assert base64.b64encode(scalar).decode()[:-2] not in shown


def _secret_scalar(pem: str) -> bytes:
    private = serialization.load_pem_private_key(pem.encode(), password=None)
    if isinstance(private, ed25519.Ed25519PrivateKey):
        return private.private_bytes_raw()
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    return private.private_numbers().private_value.to_bytes(32, "big")


def test_statement_lists_every_file_and_commits_to_them_in_its_subject():
    statement = build_statement("adapter-1", FILES, {**PREDICATE, "artifact_id": "a-1"})

    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == PREDICATE_TYPE
    resources = statement["predicate"]["resources"]
    assert [r["name"] for r in resources] == ["config.json", "tok/vocab.txt", "weights.bin"]
    assert {r["name"]: r["digest"] for r in resources} == {f.path: f.sha256 for f in FILES}
    assert {r["algorithm"] for r in resources} == {"sha256"}
    root = hashlib.sha256(b"".join(bytes.fromhex(r["digest"]) for r in resources)).hexdigest()
    assert statement["subject"] == [{"name": "adapter-1", "digest": {"sha256": root}}]
    predicate = statement["predicate"]
    assert predicate["serialization"] == {"method": "files", "hash_type": "sha256", "allow_symlinks": False}
    assert {k: predicate[k] for k in PREDICATE} == PREDICATE
    assert predicate["artifact_id"] == "a-1"


@pytest.mark.parametrize(
    ("files", "fields", "message"),
    [
        (FILES, {k: v for k, v in PREDICATE.items() if k != "job_id"}, "lacks"),
        (FILES, {**PREDICATE, "resources": []}, "model_signing"),
        ([], PREDICATE, "at least one file"),
        ([*FILES, FILES[0]], PREDICATE, "duplicate"),
        ([_digest("/etc/passwd", b"")], PREDICATE, "relative"),
        ([_digest("a/../b", b"")], PREDICATE, "relative"),
        ([_digest("a//b", b"")], PREDICATE, "relative"),
        ([_digest("./a", b"")], PREDICATE, "relative"),
    ],
)
def test_statements_that_would_not_verify_are_refused(files, fields, message):
    with pytest.raises(ValueError, match=message):
        build_statement("m", files, fields)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_bundle_round_trip(tmp_path: Path, algorithm):
    key = KeyRing.load_or_create(tmp_path, algorithm).active
    statement = build_statement("m", FILES, PREDICATE)

    bundle = sign(statement, key)

    assert bundle["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    assert bundle["verificationMaterial"]["publicKey"]["hint"] == hashlib.sha256(key.public_pem.encode()).hexdigest()
    envelope = bundle["dsseEnvelope"]
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    assert envelope["signatures"][0]["keyid"] == key.key_id
    assert base64.b64decode(envelope["payload"]) == rfc8785.dumps(statement)
    assert verify(bundle, key.public_pem) == statement
    assert verify(json.loads(json.dumps(bundle)), key.public_pem.encode()) == statement


def _resigned(bundle: dict, key, statement: dict) -> dict:
    """A bundle over `statement` with a genuine signature, to prove checks beyond the signature."""
    payload = json.dumps(statement).encode()
    forged = copy.deepcopy(bundle)
    forged["dsseEnvelope"]["payload"] = base64.b64encode(payload).decode()
    signature = key.sign(pae("application/vnd.in-toto+json", payload))
    forged["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(signature).decode()
    return forged


def test_verify_rejects_tampering_wrong_keys_and_malformed_bundles(tmp_path: Path):
    ring = KeyRing.load_or_create(tmp_path / "a", "ecdsa-p256")
    other = KeyRing.load_or_create(tmp_path / "b", "ecdsa-p256").active
    statement = build_statement("m", FILES, PREDICATE)
    bundle = sign(statement, ring.active)
    pem = ring.active.public_pem

    tampered = copy.deepcopy(statement)
    tampered["predicate"]["metrics"] = {"accuracy": 1.0}
    swapped_payload = copy.deepcopy(bundle)
    swapped_payload["dsseEnvelope"]["payload"] = base64.b64encode(rfc8785.dumps(tampered)).decode()
    with pytest.raises(SignatureError, match="no valid signature"):
        verify(swapped_payload, pem)

    with pytest.raises(SignatureError, match="another public key"):
        verify(bundle, other.public_pem)
    unhinted = copy.deepcopy(bundle)
    del unhinted["verificationMaterial"]["publicKey"]
    with pytest.raises(SignatureError, match="no valid signature"):
        verify(unhinted, other.public_pem)

    other_keyid = copy.deepcopy(bundle)
    other_keyid["dsseEnvelope"]["signatures"][0]["keyid"] = other.key_id
    with pytest.raises(SignatureError, match="no valid signature"):
        verify(other_keyid, pem)

    retyped = copy.deepcopy(bundle)
    retyped["dsseEnvelope"]["payloadType"] = "application/json"
    with pytest.raises(SignatureError, match="payload type"):
        verify(retyped, pem)

    broken = copy.deepcopy(bundle)
    del broken["dsseEnvelope"]
    with pytest.raises(SignatureError, match="malformed"):
        verify(broken, pem)
    bad_base64 = copy.deepcopy(bundle)
    bad_base64["dsseEnvelope"]["payload"] = "not base64!"
    with pytest.raises(SignatureError, match="base64"):
        verify(bad_base64, pem)

    inconsistent = copy.deepcopy(statement)
    inconsistent["predicate"]["resources"].pop()
    with pytest.raises(SignatureError, match="does not commit"):
        verify(_resigned(bundle, ring.active, inconsistent), pem)
    foreign_type = {**statement, "predicateType": "https://slsa.dev/provenance/v1"}
    with pytest.raises(SignatureError, match="predicate type"):
        verify(_resigned(bundle, ring.active, foreign_type), pem)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_records_verify_whatever_their_key_order_and_not_once_changed(tmp_path: Path, algorithm):
    ring = KeyRing.load_or_create(tmp_path, algorithm)
    record = {"actor": "alice", "reason": "passed eval", "at": "2026-01-01T00:00:00+00:00", "to_stage": "prod"}

    key_id, signature = sign_record(record, ring.active)

    assert key_id == ring.active.key_id
    pem = ring.public_key(key_id).pem
    verify_record(dict(reversed(record.items())), key_id, signature, pem)
    with pytest.raises(SignatureError, match="does not verify"):
        verify_record({**record, "actor": "mallory"}, key_id, signature, pem)
    with pytest.raises(SignatureError, match="not the signer"):
        verify_record(record, "0" * 64, signature, pem)
    with pytest.raises(SignatureError, match="base64"):
        verify_record(record, key_id, "%%%", pem)
    # Domain separation: the same bytes signed as a record are no valid in-toto envelope signature.
    message = rfc8785.dumps(record)
    bundle = {
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": {},
        "dsseEnvelope": {
            "payload": base64.b64encode(message).decode(),
            "payloadType": "application/vnd.in-toto+json",
            "signatures": [{"sig": signature, "keyid": key_id}],
        },
    }
    with pytest.raises(SignatureError, match="no valid signature"):
        verify(bundle, pem)
