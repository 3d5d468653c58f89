"""Local verification of a downloaded artifact, trusting only the registry's public keys: the bundle's DSSE
signature (Ed25519 or ECDSA P-256 over the DSSE pre-authentication encoding), the in-toto statement's commitment to
its files (the subject digest over `predicate.resources`), and each file's sha256 against that list."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from .errors import VerificationFailed

PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
CHUNK = 1 << 20


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: the bytes actually signed."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def pem_blocks(text: str) -> list[str]:
    """Every PEM block of `text`: a file of concatenated public keys, the ones to trust."""
    begin = "-----BEGIN "
    return [f"{begin}{block}" for block in text.split(begin)[1:]]


def key_id(pem: str) -> str:
    """The registry's key id: sha256 of the DER SubjectPublicKeyInfo."""
    der = serialization.load_pem_public_key(pem.encode()).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def _signed_by(pem: str, signature: bytes, message: bytes) -> bool:
    key = serialization.load_pem_public_key(pem.encode())
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, message)
        elif isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
            key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
        else:
            return False  # a key type the registry never signs with
    except InvalidSignature:
        return False
    return True


def _b64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as error:
        raise VerificationFailed(f"invalid base64 in the bundle: {error}") from None


def verify_bundle(bundle: Mapping[str, Any], public_keys: Iterable[str]) -> dict[str, Any]:
    """The signed in-toto statement once a signature by one of `public_keys` (PEM) holds and the statement's
    subject digest commits to its file list; VerificationFailed otherwise."""
    try:
        envelope = bundle["dsseEnvelope"]
        payload_type, payload = envelope["payloadType"], _b64(envelope["payload"])
        signatures = [(s.get("keyid"), _b64(s["sig"])) for s in envelope["signatures"]]
    except (KeyError, TypeError, AttributeError) as error:
        raise VerificationFailed(f"malformed bundle: missing or mistyped {error}") from None
    if payload_type != PAYLOAD_TYPE:
        raise VerificationFailed(f"payload type {payload_type!r} is not {PAYLOAD_TYPE!r}")
    message = pae(payload_type, payload)
    keys = {key_id(pem): pem for pem in public_keys}
    # A signature naming a key id is tried with that key only; one without an id with every key.
    if not any(_signed_by(pem, sig, message) for kid, sig in signatures for k, pem in keys.items() if kid in (None, k)):
        raise VerificationFailed("no signature by any of the registry's keys verifies")
    try:
        statement: dict[str, Any] = json.loads(payload)
        resources = statement["predicate"]["resources"]
        subject = statement["subject"][0]["digest"]["sha256"]
        root = hashlib.sha256(b"".join(bytes.fromhex(r["digest"]) for r in resources)).hexdigest()
    except (ValueError, KeyError, TypeError, IndexError) as error:
        raise VerificationFailed(f"the signed payload is not an artifact statement: {error!r}") from None
    if statement.get("_type") != STATEMENT_TYPE or len(statement["subject"]) != 1 or subject != root:
        raise VerificationFailed("the statement's subject does not commit to its file list")
    return statement


def sha256_of(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(CHUNK):
            hasher.update(chunk)
    return hasher.hexdigest()


def check_files(statement: Mapping[str, Any], directory: Path) -> list[str]:
    """What is wrong with `directory` against the signed file list: missing, altered or unlisted files."""
    expected = {r["name"]: r["digest"] for r in statement["predicate"]["resources"]}
    present = {p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file()}
    problems = [f"missing: {name}" for name in sorted(expected.keys() - present)]
    problems += [f"unlisted: {name}" for name in sorted(present - expected.keys())]
    problems += [
        f"digest mismatch: {name}"
        for name in sorted(expected.keys() & present)
        if sha256_of(directory / name) != expected[name]
    ]
    return problems
