"""Helpers for the registry tests: store an artifact's files and submit it, wait for the registry's verdict."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
from modelops_contracts import ArtifactKind, ArtifactSubmitted, FileDigest, LineageRelation, ParentRef
from modelops_shared.bus import Bus
from modelops_shared.storage import ObjectStore

WAIT_S = 120


def sample_files(seed: str = "") -> dict[str, bytes]:
    return {
        "config.json": b'{"architectures": ["LlamaForCausalLM"], "seed": "%s"}' % seed.encode(),
        "model.safetensors": hashlib.sha256(seed.encode()).digest() * 64,
        "tokenizer/tokenizer.json": b'{"version": "1.0"}',
    }


@dataclass
class Submitter:
    bus: Bus
    store: ObjectStore
    created_by: str = "alice"
    submitted: list[str] = field(default_factory=list)

    async def submit(
        self,
        kind: ArtifactKind = ArtifactKind.BASE_MODEL,
        name: str = "sample-model",
        files: dict[str, bytes] | None = None,
        *,
        parents: dict[str, LineageRelation] | None = None,
        metrics: dict[str, float] | None = None,
        job_id: str | None = None,
        tamper: str | None = None,
        artifact_id: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> ArtifactSubmitted:
        """Store the files under artifacts/<id>/ and publish ArtifactSubmitted; `tamper` flips a byte of that file
        after its digest was taken, as corruption in transit or at rest would."""
        artifact_id = artifact_id or f"art-{uuid.uuid4().hex[:12]}"
        files = files if files is not None else sample_files(artifact_id)
        digests = []
        for path, data in files.items():
            stored = bytes([data[0] ^ 1]) + data[1:] if path == tamper else data
            await self.store.put(f"artifacts/{artifact_id}/{path}", stored)
            digests.append(FileDigest(path=path, sha256=hashlib.sha256(data).hexdigest(), size=len(data)))
        submission = ArtifactSubmitted(
            artifact_id=artifact_id,
            kind=kind,
            name=name,
            uri=self.store.url_of(f"artifacts/{artifact_id}"),
            files=digests,
            parents=[ParentRef(artifact_id=p, relation=r) for p, r in (parents or {}).items()],
            job_id=job_id,
            metrics=metrics or {},
            created_by=self.created_by,
            metadata=metadata or {},
        )
        await self.bus.publish(submission)
        self.submitted.append(artifact_id)
        return submission


async def verdict(client: httpx.AsyncClient, artifact_id: str) -> dict[str, Any]:
    """The registered artifact, or the 404 problem of a rejected one, once the registry has decided."""
    async with asyncio.timeout(WAIT_S):
        while True:
            response = await client.get(f"/v1/artifacts/{artifact_id}")
            body: dict[str, Any] = response.json()
            if response.status_code == 200 or body.get("submission_status") == "rejected":
                return body
            await asyncio.sleep(0.1)
