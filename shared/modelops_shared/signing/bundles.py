"""Artifact manifests as in-toto statements in DSSE bundles that `model_signing` verifies; signed governance records.

Bundle layout (a Sigstore bundle v0.3 as `model_signing sign key` writes it, keyless, no transparency log)::

    {"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
     "verificationMaterial": {"publicKey": {"hint": <sha256 of the public key's PEM>}, "tlogEntries": []},
     "dsseEnvelope": {"payloadType": "application/vnd.in-toto+json",
                      "payload": <base64 of the RFC 8785 canonical statement>,
                      "signatures": [{"keyid": <our key id>, "sig": <base64 signature over PAE(type, payload)>}]}}

`hint` is model_signing's fingerprint (sha256 of the PEM text), which its verifier compares against the key it
is handed; our key id (sha256 of the DER SubjectPublicKeyInfo) travels as the DSSE signature's `keyid`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from modelops_contracts import FileDigest

from .canonical import canonical_json
from .keys import PublicKeyObject, SigningKey, key_id_of, load_public_key, public_pem_of, verify_signature

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://model_signing/signature/v1.0"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
RECORD_PAYLOAD_TYPE = "application/vnd.modelops.record+json"

REQUIRED_PREDICATE_FIELDS = frozenset({"kind", "base_model_digest", "parents", "job_id", "metrics"})
# model_signing reads these two predicate keys and, by its v1.0 predicate's rule, ignores every other one.
_RESERVED_PREDICATE_FIELDS = frozenset({"serialization", "resources"})
# Plain sha256 per file, every file listed: what `model_signing verify` recomputes over a downloaded directory.
_SERIALIZATION = {"method": "files", "hash_type": "sha256", "allow_symlinks": False}


class SignatureError(Exception):
    """A bundle or record failed verification: bad signature, wrong key, or malformed content."""


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: what is actually signed, binding the payload to its type."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def build_statement(name: str, files: Iterable[FileDigest], predicate_fields: Mapping[str, Any]) -> dict[str, Any]:
    """An in-toto Statement v1 naming every file of an artifact with its sha256, plus the registry's facts about it.

    model_signing's verifier accepts exactly one subject, so the issue's "subjects = files + digests" is carried
    in its two-level form: the predicate's `resources` list every file (`name` = path, `digest` = sha256), and
    the single subject (`name`, sha256 over the files' raw digests in the listed order) commits to all of them;
    verifiers check that commitment (model_signing does, as does `verify`), so no file can be added, dropped or
    altered without breaking it. `predicate_fields` (kind, base_model_digest, parents, job_id, metrics and any
    other registry facts) sit beside `serialization` and `resources` in the predicate, where model_signing's
    v1.0 predicate reserves room for extensions.
    """
    missing = REQUIRED_PREDICATE_FIELDS - predicate_fields.keys()
    if missing:
        raise ValueError(f"predicate lacks {sorted(missing)}")
    clashing = _RESERVED_PREDICATE_FIELDS & predicate_fields.keys()
    if clashing:
        raise ValueError(f"predicate fields {sorted(clashing)} are model_signing's")
    # model_signing lists files in path order, component by component; the verifier follows whatever order is
    # given, but matching it keeps our subject digest equal to the one model_signing computes for the same files.
    ordered = sorted(files, key=lambda f: f.path.split("/"))
    if not ordered:
        raise ValueError("an artifact has at least one file")
    paths = [f.path for f in ordered]
    for path in paths:
        parts = path.split("/")
        # model_signing matches names against paths relative to the model directory; anything else never matches.
        if path.startswith("/") or any(part in ("", ".", "..") for part in parts):
            raise ValueError(f"{path!r} is not a normalised relative path")
    if len(set(paths)) != len(paths):
        raise ValueError("duplicate file paths")
    resources = [{"name": f.path, "algorithm": "sha256", "digest": f.sha256} for f in ordered]
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": name, "digest": {"sha256": _root_digest(resources)}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {"serialization": dict(_SERIALIZATION), "resources": resources, **predicate_fields},
    }


def sign(statement: Mapping[str, Any], key: SigningKey) -> dict[str, Any]:
    """Wrap the statement (as RFC 8785 canonical JSON, so equal statements give equal payloads) in a signed bundle."""
    payload = canonical_json(statement)
    signature = key.sign(pae(PAYLOAD_TYPE, payload))
    return {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {"publicKey": {"hint": _hint(key.public_pem)}, "tlogEntries": []},
        "dsseEnvelope": {
            "payload": base64.b64encode(payload).decode(),
            "payloadType": PAYLOAD_TYPE,
            "signatures": [{"sig": base64.b64encode(signature).decode(), "keyid": key.key_id}],
        },
    }


def verify(bundle: Mapping[str, Any], public_key_pem: bytes | str) -> dict[str, Any]:
    """The statement in `bundle` once this key's signature and the file commitment hold; else SignatureError."""
    public_key = _public_key(public_key_pem)
    key_id = key_id_of(public_key)
    try:
        if bundle["mediaType"] != BUNDLE_MEDIA_TYPE:
            raise SignatureError(f"bundle media type {bundle['mediaType']!r} is not {BUNDLE_MEDIA_TYPE!r}")
        hint = bundle["verificationMaterial"].get("publicKey", {}).get("hint")
        envelope = bundle["dsseEnvelope"]
        payload_type = envelope["payloadType"]
        payload = _b64decode(envelope["payload"])
        signatures = [(s.get("keyid") or None, _b64decode(s["sig"])) for s in envelope["signatures"]]
    except (KeyError, TypeError, AttributeError) as error:
        raise SignatureError(f"malformed bundle: missing or mistyped {error}") from None
    # The same check model_signing makes, so a bundle we accept is one it accepts.
    if hint and hint != _hint(public_pem_of(public_key)):
        raise SignatureError(f"bundle names another public key (hint {hint}); this key is {key_id}")
    if payload_type != PAYLOAD_TYPE:
        raise SignatureError(f"payload type {payload_type!r} is not {PAYLOAD_TYPE!r}")
    message = pae(payload_type, payload)
    # A signature carrying another key's id is skipped rather than tried: DSSE envelopes may hold several signers.
    if not any(verify_signature(public_key, sig, message) for kid, sig in signatures if kid in (None, key_id)):
        raise SignatureError(f"no valid signature by key {key_id}")
    try:
        return _checked_statement(json.loads(payload))
    except (ValueError, KeyError, TypeError) as error:
        raise SignatureError(f"signed payload is not a model-signing statement: {error!r}") from None


def sign_record(record: Mapping[str, Any], key: SigningKey) -> tuple[str, str]:
    """Sign a small governance record (a promotion: actor, reason, time): `(key_id, base64 signature)`.

    The signature covers PAE(application/vnd.modelops.record+json, RFC 8785 JSON of the record), so any party
    re-canonicalising the same record reproduces the signed bytes, and a record signature can never pass for
    an artifact envelope's signature or the reverse.
    """
    signature = key.sign(pae(RECORD_PAYLOAD_TYPE, canonical_json(record)))
    return key.key_id, base64.b64encode(signature).decode()


def verify_record(record: Mapping[str, Any], key_id: str, signature_b64: str, public_key_pem: bytes | str) -> None:
    """Raise SignatureError unless `signature_b64` is `key_id`'s signature of `record` and the PEM is that key."""
    public_key = _public_key(public_key_pem)
    if key_id_of(public_key) != key_id:
        raise SignatureError(f"the public key given is {key_id_of(public_key)}, not the signer {key_id}")
    if not verify_signature(public_key, _b64decode(signature_b64), pae(RECORD_PAYLOAD_TYPE, canonical_json(record))):
        raise SignatureError(f"record signature by key {key_id} does not verify")


def _root_digest(resources: list[dict[str, str]]) -> str:
    """model_signing's subject digest: sha256 over the concatenated raw digests of the resources, in order."""
    hasher = hashlib.sha256()
    for resource in resources:
        hasher.update(bytes.fromhex(resource["digest"]))
    return hasher.hexdigest()


def _checked_statement(statement: Any) -> dict[str, Any]:
    if not isinstance(statement, dict):
        raise TypeError("the statement is not a JSON object")
    if statement["_type"] != STATEMENT_TYPE:
        raise ValueError(f"statement type {statement['_type']!r} is not {STATEMENT_TYPE!r}")
    if statement["predicateType"] != PREDICATE_TYPE:
        raise ValueError(f"predicate type {statement['predicateType']!r} is not {PREDICATE_TYPE!r}")
    if len(statement["subject"]) != 1:
        raise ValueError(f"{len(statement['subject'])} subjects; model_signing requires exactly one")
    resources = statement["predicate"]["resources"]
    if any(r["algorithm"] != "sha256" or len(bytes.fromhex(r["digest"])) != 32 for r in resources):
        raise ValueError("every resource must carry a sha256 digest")
    if statement["subject"][0]["digest"]["sha256"] != _root_digest(resources):
        raise ValueError("the subject digest does not commit to the listed files")
    return statement


def _public_key(pem: bytes | str) -> PublicKeyObject:
    try:
        return load_public_key(pem)[0]
    except ValueError as error:
        raise SignatureError(f"unusable public key: {error}") from None


def _hint(pem: str) -> str:
    return hashlib.sha256(pem.encode()).hexdigest()


def _b64decode(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as error:
        raise SignatureError(f"invalid base64: {error}") from None
