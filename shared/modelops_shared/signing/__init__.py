"""Artifact signing: registry keys, in-toto statements in DSSE bundles (model-signing format), signed records.

The registry signs; every service that loads an artifact verifies with the same code and the served public keys.
"""

from .bundles import SignatureError, build_statement, pae, sign, sign_record, verify, verify_record
from .keys import KeyRing, KeyRingError, PublicKey, SigningKey, key_id_of, load_public_key, pem_blocks

__all__ = [
    "KeyRing",
    "KeyRingError",
    "PublicKey",
    "SignatureError",
    "SigningKey",
    "build_statement",
    "key_id_of",
    "load_public_key",
    "pae",
    "pem_blocks",
    "sign",
    "sign_record",
    "verify",
    "verify_record",
]
