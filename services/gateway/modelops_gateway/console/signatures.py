"""Whether an artifact's signature holds, checked by the gateway for the console: the registry's DSSE bundle
verified against the registry's published key that signed it, and the signed statement being the one the registry
recorded (its sha256 is the artifact's digest). The files themselves are checked where they are loaded."""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from typing import Literal

from modelops_shared.signing import SignatureError, verify

from ..registry_lookups import ArtifactReferenceNotFound
from ..upstream import Upstream

SignatureStatus = Literal["verified", "invalid", "unsigned"]


@dataclass(frozen=True)
class SignatureState:
    status: SignatureStatus
    key_id: str | None
    algorithm: str | None
    files: int | None
    detail: str


async def signature_state(registry: Upstream, artifact_id: str) -> SignatureState:
    """Verify `artifact_id`'s bundle as a user would; an upstream failure raises, a bad signature is a state."""
    answer = await registry.request("GET", f"/v1/artifacts/{artifact_id}")
    if answer.status_code == 404:
        raise ArtifactReferenceNotFound(f"no artifact {artifact_id}")
    if answer.status_code != 200:
        raise registry.failure(answer.status_code)
    artifact = answer.json()
    key_id = artifact.get("key_id")
    if not artifact.get("bundle_uri") or not key_id:
        return SignatureState("unsigned", None, None, None, "the registry holds no signed bundle for it")
    bundle = await registry.json_of(f"/v1/artifacts/{artifact_id}/bundle")
    keys = {key["key_id"]: key for key in await registry.json_of("/v1/keys")}
    key = keys.get(key_id)
    if key is None:
        return SignatureState("invalid", key_id, None, None, f"key {key_id[:12]}… is not among the registry's keys")
    try:
        statement = verify(bundle, key["pem"])
        payload = base64.b64decode(bundle["dsseEnvelope"]["payload"], validate=True)
    except (SignatureError, KeyError, TypeError, binascii.Error) as error:
        return SignatureState("invalid", key_id, key["algorithm"], None, str(error))
    if hashlib.sha256(payload).hexdigest() != artifact["digest"]:
        return SignatureState("invalid", key_id, key["algorithm"], None, "the signed statement is not the recorded one")
    files = len(statement["predicate"]["resources"])
    return SignatureState("verified", key_id, key["algorithm"], files, f"signed by {key_id[:12]}… over {files} files")
