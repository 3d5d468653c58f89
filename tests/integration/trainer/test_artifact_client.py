"""The shared fetch-and-verify client (modelops_shared.artifacts) against a real registry: by id or by name, into a
digest-keyed cache whose signature is re-verified on every fetch and whose files are re-hashed only when they changed
since they were last hashed; tampered files and revoked artifacts are refused."""

from __future__ import annotations

import hashlib
import uuid

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from deployables import promote
from helpers import registered, service_auth
from modelops_contracts import ArtifactKind, ArtifactSubmitted, FileDigest
from modelops_shared import artifacts
from modelops_shared.artifacts import (
    ArtifactClient,
    ArtifactNotFound,
    ArtifactUnavailable,
    ArtifactVerificationError,
)
from modelops_shared.bus import Bus
from modelops_shared.settings import Settings
from modelops_shared.signing.keys import pem_blocks, public_pem_of
from modelops_shared.storage import ObjectStore, open_store


@pytest.fixture(scope="module")
def store(embedded_stack: Settings) -> ObjectStore:
    return open_store(embedded_stack.store_url, embedded_stack)


async def register(store: ObjectStore, bus: Bus, registry: httpx.AsyncClient, name: str, seed: str) -> str:
    artifact_id = f"art-{uuid.uuid4().hex[:12]}"
    files = {"config.json": f'{{"seed": "{seed}"}}'.encode(), "weights/model.bin": seed.encode() * 1000}
    for path, data in files.items():
        await store.put(f"artifacts/{artifact_id}/{path}", data)
    await bus.publish(
        ArtifactSubmitted(
            artifact_id=artifact_id,
            kind=ArtifactKind.BASE_MODEL,
            name=name,
            uri=store.url_of(f"artifacts/{artifact_id}"),
            files=[FileDigest(path=p, sha256=hashlib.sha256(d).hexdigest(), size=len(d)) for p, d in files.items()],
            created_by="alice",
        )
    )
    await registered(registry, artifact_id)
    return artifact_id


def _must_not_rehash(*_: object) -> None:
    raise AssertionError("an unchanged cached copy was re-hashed")


async def test_fetch_by_id_or_name_verifies_and_caches_by_digest(
    store, bus, registry, registry_url, tmp_path, monkeypatch
):
    name = f"model-{uuid.uuid4().hex[:6]}"
    older = await register(store, bus, registry, name, "one")
    newer = await register(store, bus, registry, name, "two")
    async with ArtifactClient(registry_url, tmp_path, auth=service_auth("registry", "trainer")) as client:
        by_name = await client.fetch(name)
        assert by_name.id == newer  # a name means the latest registered artifact of that name
        assert (by_name.path / "weights" / "model.bin").read_bytes() == b"two" * 1000
        assert by_name.path == tmp_path / by_name.digest
        assert (await client.fetch(older)).id == older

        with monkeypatch.context() as patch:
            patch.setattr(artifacts, "_cached_problem", _must_not_rehash)
            assert (await client.fetch(newer)).path == by_name.path  # unchanged since hashed: not read again

        (by_name.path / "config.json").write_text('{"seed": "t0o"}')  # the same size, another byte
        again = await client.fetch(newer)  # the altered cached copy is re-hashed, dropped and fetched again
        assert (again.path / "config.json").read_bytes() == b'{"seed": "two"}'

        with pytest.raises(ArtifactNotFound):
            await client.fetch("no-such-model")
        with pytest.raises(ArtifactUnavailable, match="not a adapter"):
            await client.fetch(newer, ArtifactKind.ADAPTER)


async def test_a_file_changed_after_signing_is_refused(store, bus, registry, registry_url, tmp_path):
    artifact_id = await register(store, bus, registry, f"model-{uuid.uuid4().hex[:6]}", "three")
    await store.put(f"artifacts/{artifact_id}/weights/model.bin", b"thref" + b"three" * 999)  # one byte flipped
    async with ArtifactClient(registry_url, tmp_path, auth=service_auth("registry", "trainer")) as client:
        with pytest.raises(ArtifactVerificationError, match=r"weights/model.bin: sha256 .* != signed"):
            await client.fetch(artifact_id)
    assert not any(tmp_path.iterdir())  # nothing unverified is left behind


async def test_a_revoked_artifact_is_refused(store, bus, registry, registry_url, tmp_path):
    artifact_id = await register(store, bus, registry, f"model-{uuid.uuid4().hex[:6]}", "four")
    await promote(registry, artifact_id, "revoked", reason="leaked training data")
    async with ArtifactClient(registry_url, tmp_path, auth=service_auth("registry", "trainer")) as client:
        with pytest.raises(ArtifactUnavailable, match="revoked"):
            await client.fetch(artifact_id)


class _KeysWatched(httpx.AsyncBaseTransport):
    """The registry, noting whether its key list was asked for."""

    def __init__(self) -> None:
        self.real = httpx.AsyncHTTPTransport()
        self.keys_asked = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.keys_asked = self.keys_asked or request.url.path == "/v1/keys"
        return await self.real.handle_async_request(request)


async def test_pinned_keys_are_the_only_signers_trusted(embedded_stack, store, bus, registry, registry_url, tmp_path):
    artifact_id = await register(store, bus, registry, f"model-{uuid.uuid4().hex[:6]}", "pinned")
    served = "".join(key["pem"] for key in (await registry.get("/v1/keys")).json())
    trusted_file = tmp_path / "trusted.pem"
    trusted_file.write_text(served)
    settings = embedded_stack.model_copy(update={"registry_url": registry_url, "service_name": "trainer"})
    settings.registry_trusted_keys_file = trusted_file
    async with ArtifactClient.from_settings(settings, tmp_path / "pinned") as client:
        assert (await client.fetch(artifact_id)).id == artifact_id

    watched = _KeysWatched()
    async with ArtifactClient(
        registry_url,
        tmp_path / "watched",
        trusted_keys=pem_blocks(served),
        transport=watched,
        auth=service_auth("registry", "trainer"),
    ) as c:
        assert (await c.fetch(artifact_id)).id == artifact_id
    assert not watched.keys_asked  # pinned keys are never fetched from the server being verified

    stranger = public_pem_of(ed25519.Ed25519PrivateKey.generate().public_key())
    async with ArtifactClient(
        registry_url, tmp_path / "stranger", trusted_keys=[stranger], auth=service_auth("registry", "trainer")
    ) as client:
        with pytest.raises(ArtifactVerificationError, match="which is not among the trusted keys"):
            await client.fetch(artifact_id)
    assert not (tmp_path / "stranger").exists()
