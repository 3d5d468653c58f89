"""Registry signing keys: created on first start, rotated on demand, public halves kept and served for verification."""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, get_args

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

Algorithm = Literal["ed25519", "ecdsa-p256"]
ALGORITHMS: tuple[Algorithm, ...] = get_args(Algorithm)

PrivateKeyObject = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
PublicKeyObject = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey

_INDEX = "keyring.json"
_LOCK = ".lock"
_PRIVATE_SUFFIX = ".key.pem"
_PUBLIC_SUFFIX = ".pub.pem"
_PEM_BEGIN = "-----BEGIN "

log = logging.getLogger(__name__)


class KeyRingError(Exception):
    """The key directory is unusable as it stands (inconsistent, too permissive, or set up for another algorithm)."""


def key_id_of(public_key: PublicKeyObject) -> str:
    """Hex sha256 of the key's DER SubjectPublicKeyInfo: one id per key, whatever its algorithm."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def public_pem_of(public_key: PublicKeyObject) -> str:
    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def algorithm_of(public_key: object) -> Algorithm:
    """The algorithm of a supported key; ValueError for any other key type or curve."""
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return "ed25519"
    if isinstance(public_key, ec.EllipticCurvePublicKey) and isinstance(public_key.curve, ec.SECP256R1):
        return "ecdsa-p256"
    raise ValueError(f"unsupported key type {type(public_key).__name__}; expected Ed25519 or ECDSA P-256")


def load_public_key(pem: bytes | str) -> tuple[PublicKeyObject, Algorithm]:
    """Parse a PEM public key of a supported algorithm; ValueError for anything else."""
    key = serialization.load_pem_public_key(pem.encode() if isinstance(pem, str) else pem)
    if not isinstance(key, ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey):
        raise ValueError(f"unsupported key type {type(key).__name__}; expected Ed25519 or ECDSA P-256")
    return key, algorithm_of(key)


def pem_blocks(text: str) -> list[str]:
    """Every PEM block of `text` (a file of concatenated public keys)."""
    return [f"{_PEM_BEGIN}{block}" for block in text.split(_PEM_BEGIN)[1:]]


def verify_signature(public_key: PublicKeyObject, signature: bytes, message: bytes) -> bool:
    """Ed25519, or ECDSA P-256 with SHA-256 over a DER-encoded signature (the form model_signing writes)."""
    try:
        if isinstance(public_key, ed25519.Ed25519PublicKey):
            public_key.verify(signature, message)
        else:
            public_key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


class SigningKey:
    """A private key held in memory. It shows its id and algorithm, never its material."""

    __slots__ = ("_private", "algorithm", "key_id")

    def __init__(self, private: PrivateKeyObject) -> None:
        self._private = private
        self.algorithm = algorithm_of(private.public_key())
        self.key_id = key_id_of(private.public_key())

    @property
    def public_pem(self) -> str:
        return public_pem_of(self._private.public_key())

    def sign(self, message: bytes) -> bytes:
        if isinstance(self._private, ed25519.Ed25519PrivateKey):
            return self._private.sign(message)
        return self._private.sign(message, ec.ECDSA(hashes.SHA256()))

    def _pkcs8_pem(self) -> bytes:
        return self._private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def __repr__(self) -> str:
        return f"SigningKey(key_id={self.key_id!r}, algorithm={self.algorithm!r})"


@dataclass(frozen=True)
class PublicKey:
    key_id: str
    algorithm: Algorithm
    pem: str
    created_at: datetime
    active: bool


def _generate(algorithm: Algorithm) -> SigningKey:
    if algorithm == "ed25519":
        return SigningKey(ed25519.Ed25519PrivateKey.generate())
    if algorithm == "ecdsa-p256":
        return SigningKey(ec.generate_private_key(ec.SECP256R1()))
    raise ValueError(f"unknown signing algorithm {algorithm!r}; expected one of {ALGORITHMS}")


def write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Replace `path` with `data` at `mode`, durably: a reader sees the old file or the new one, never a part."""
    staged = path.with_name(path.name + ".tmp")
    staged.unlink(missing_ok=True)
    # O_EXCL with the final mode from the first byte: a private key is never readable by others, not even briefly.
    with os.fdopen(os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode), "wb") as file:
        os.fchmod(file.fileno(), mode)  # the umask may have narrowed the mode passed to open
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    os.replace(staged, path)
    # The rename must be durable before rotation deletes the previous private key.
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    # Registry processes (API, consumers) start together on one key directory; only one may create or rotate.
    with open(directory / _LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


class KeyRing:
    """The registry's keys in one directory (0700).

    Layout: `<key_id>.pub.pem` for every key ever used, `<key_id>.key.pem` (0600) for the active key only, and
    `keyring.json` listing each key's id and creation time and naming the active one. Algorithms are read from
    the keys themselves, never from the index.

    Rotation deletes the previous private key: verification needs only public keys, and a retired private key
    that still exists can still be stolen and used to sign. A bundle signed before rotation keeps verifying
    against its key's public half, which stays here and in `public_keys()`. A rotation made by another process
    (the `rotate-key` command beside a running registry) is picked up on this ring's next use.
    """

    def __init__(self, directory: Path) -> None:
        """Use `load_or_create`; this expects a directory that already holds a key ring."""
        self._directory = directory
        self._version: tuple[int, int, int] | None = None
        self._active: SigningKey
        self._public: list[PublicKey]
        self._refresh()

    @classmethod
    def load_or_create(cls, directory: Path, algorithm: Algorithm = "ed25519") -> KeyRing:
        """Load the keys in `directory`, generating a first key of `algorithm` when there are none.

        `algorithm` only shapes a new key: an existing active key of another algorithm stays active (with a
        warning) until rotated, because replacing the registry's key is an explicit operator act, and because
        replicas configured differently would otherwise keep rotating each other's keys away.
        """
        if algorithm not in ALGORITHMS:
            raise ValueError(f"unknown signing algorithm {algorithm!r}; expected one of {ALGORITHMS}")
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(directory, 0o700)
        with _locked(directory):
            if _read_index(directory) is None:
                key = _generate(algorithm)
                _install(directory, key, {"active": key.key_id, "keys": []})
                log.info("created signing key %s (%s) in %s", key.key_id, algorithm, directory)
        ring = cls(directory)
        if ring.active.algorithm != algorithm:
            log.warning(
                "the active signing key %s is %s, not the configured %s; rotate the key to switch algorithms",
                ring.active.key_id,
                ring.active.algorithm,
                algorithm,
            )
        return ring

    @property
    def active(self) -> SigningKey:
        self._refresh()
        return self._active

    def rotate(self, algorithm: Algorithm) -> PublicKey:
        """Make a new active key of `algorithm`; earlier public keys stay, earlier private keys are deleted."""
        with _locked(self._directory):
            index = _read_index(self._directory)
            if index is None:
                raise KeyRingError(f"{self._directory / _INDEX} has disappeared")
            key = _generate(algorithm)
            previous = index["active"]
            index["active"] = key.key_id
            _install(self._directory, key, index)
            # Also removes private keys orphaned by a create or rotate that crashed before updating the index.
            for path in self._directory.glob(f"*{_PRIVATE_SUFFIX}"):
                if path.name != f"{key.key_id}{_PRIVATE_SUFFIX}":
                    path.unlink()
        log.info("rotated signing key %s -> %s (%s)", previous, key.key_id, algorithm)
        return self.public_key(key.key_id)

    def public_keys(self) -> list[PublicKey]:
        """Every key this ring has signed with, oldest first."""
        self._refresh()
        return [replace(key, active=key.key_id == self._active.key_id) for key in self._public]

    def public_key(self, key_id: str) -> PublicKey:
        for key in self.public_keys():
            if key.key_id == key_id:
                return key
        raise KeyError(f"unknown signing key id {key_id!r}")

    def __repr__(self) -> str:
        return f"KeyRing(directory={str(self._directory)!r}, active={self._active!r}, keys={len(self._public)})"

    def _refresh(self) -> None:
        """Reload when the index has changed: every write replaces it (new inode) and appends a key (larger)."""
        try:
            stat = (self._directory / _INDEX).stat()
        except FileNotFoundError:
            raise KeyRingError(f"no key ring in {self._directory}") from None
        if (stat.st_ino, stat.st_mtime_ns, stat.st_size) == self._version:
            return
        # Under the lock: a rotation in progress deletes the private key an unlocked read might be about to open.
        with _locked(self._directory):
            stat = (self._directory / _INDEX).stat()
            index = _read_index(self._directory)
            if index is None:
                raise KeyRingError(f"no key ring in {self._directory}")
            self._active = _load_active(self._directory, index)
            self._public = [_read_public(self._directory, entry) for entry in index["keys"]]
            self._version = (stat.st_ino, stat.st_mtime_ns, stat.st_size)


def _read_public(directory: Path, entry: dict[str, str]) -> PublicKey:
    path = directory / f"{entry['key_id']}{_PUBLIC_SUFFIX}"
    pem = path.read_text()
    public, algorithm = load_public_key(pem)
    if key_id_of(public) != entry["key_id"]:
        raise KeyRingError(f"{path} holds key {key_id_of(public)}, not {entry['key_id']}")
    return PublicKey(entry["key_id"], algorithm, pem, datetime.fromisoformat(entry["created_at"]), active=False)


def _read_index(directory: Path) -> dict[str, Any] | None:
    try:
        index: dict[str, Any] = json.loads((directory / _INDEX).read_text())
    except FileNotFoundError:
        return None
    return index


def _install(directory: Path, key: SigningKey, index: dict[str, Any]) -> None:
    """Write the key's files, then the index naming it (the index write is the commit point)."""
    write_atomic(directory / f"{key.key_id}{_PRIVATE_SUFFIX}", key._pkcs8_pem(), 0o600)
    write_atomic(directory / f"{key.key_id}{_PUBLIC_SUFFIX}", key.public_pem.encode(), 0o644)
    index["keys"].append({"key_id": key.key_id, "created_at": datetime.now(UTC).isoformat()})
    write_atomic(directory / _INDEX, json.dumps(index, indent=2).encode(), 0o644)


def _load_active(directory: Path, index: dict[str, Any]) -> SigningKey:
    key_id = index["active"]
    path = directory / f"{key_id}{_PRIVATE_SUFFIX}"
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        raise KeyRingError(f"the private half of the active signing key {key_id} is missing: {path}") from None
    if mode & 0o077:
        raise KeyRingError(f"{path} is accessible to others (mode {mode:o}); it must be 0600")
    private = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(private, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey):
        raise KeyRingError(f"{path} holds an unsupported {type(private).__name__}")
    key = SigningKey(private)
    if key.key_id != key_id:
        raise KeyRingError(f"{path} holds key {key.key_id}, not {key_id}")
    return key
