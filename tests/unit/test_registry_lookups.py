"""The gateway's registry lookups: listings kept for a while, one read shared by the submissions that missed together,
and never an empty listing or a fresh read taken from another caller."""

from __future__ import annotations

import asyncio

import httpx
from cryptography.hazmat.primitives.asymmetric import ed25519
from modelops_contracts import ArtifactKind
from modelops_gateway.registry_lookups import RegistryLookups
from modelops_gateway.upstream import Upstream
from modelops_shared.service_tokens import ServiceIdentity

MODEL = {"id": "art-1", "kind": "base_model", "name": "llama", "created_at": "2026-01-01T00:00:00+00:00"}


def lookups(listing: list[dict[str, object]], ttl_s: float) -> tuple[RegistryLookups, list[httpx.Request]]:
    """Lookups against a registry that answers `listing` to every read, a little later; the reads it got."""
    reads: list[httpx.Request] = []

    async def answer(request: httpx.Request) -> httpx.Response:
        reads.append(request)
        await asyncio.sleep(0.01)
        return httpx.Response(200, json={"data": listing, "next_cursor": None})

    identity = ServiceIdentity("gateway", ed25519.Ed25519PrivateKey.generate())
    timeout = httpx.Timeout(5.0)
    transport = httpx.MockTransport(answer)
    registry = Upstream(
        "registry", "http://registry", timeout, label="registry", identity=identity, transport=transport
    )
    return RegistryLookups(registry, ttl_s), reads


async def test_submissions_that_miss_together_share_one_read_then_the_kept_listing():
    kept, reads = lookups([MODEL], ttl_s=60)
    answers = await asyncio.gather(*(kept.registered(ArtifactKind.BASE_MODEL, "llama") for _ in range(16)))
    assert answers == [[MODEL]] * 16
    assert await kept.registered(ArtifactKind.BASE_MODEL, "llama") == [MODEL]
    assert len(reads) == 1


async def test_an_empty_listing_shared_is_read_again_by_each_caller():
    kept, reads = lookups([], ttl_s=60)
    await asyncio.gather(*(kept.registered(ArtifactKind.BASE_MODEL, "llama") for _ in range(3)))
    assert len(reads) == 1 + 3


async def test_a_fresh_read_and_a_read_with_the_cache_off_are_the_callers_own():
    kept, reads = lookups([MODEL], ttl_s=60)
    await asyncio.gather(*(kept.registered(ArtifactKind.BASE_MODEL, "llama", fresh=True) for _ in range(3)))
    assert len(reads) == 3
    uncached, reads = lookups([MODEL], ttl_s=0)
    await asyncio.gather(*(uncached.registered(ArtifactKind.BASE_MODEL, "llama") for _ in range(3)))
    assert len(reads) == 3
