"""RAG through the gateway, against a real rag service: a collection made with a developer key, documents uploaded as
multipart (the same bytes again make no version and leave nothing behind; a file of another type is a 415, one that
does not parse a 422, and neither leaves bytes in the store), a viewer reads but cannot write, and searching a
collection that was never indexed says so."""

from __future__ import annotations

import uuid

import httpx

from .conftest import RunningGateway
from .support import Key


async def uploads(gateway: RunningGateway) -> set[str]:
    return {info.key for info in await gateway.store.list("rag-uploads/")}


async def test_documents_are_uploaded_through_the_gateway_and_refused_whole(
    gateway: RunningGateway, keys: dict[str, Key], minilm: str
) -> None:
    name = f"notes-{uuid.uuid4().hex[:6]}"
    async with gateway.client(keys["developer"].secret) as developer, gateway.client(keys["viewer"].secret) as viewer:
        created = await developer.post("/v1/rag/collections", json={"name": name, "embedding_model": minilm})
        assert created.status_code == 201, created.text
        assert created.json()["embedding_model"] == minilm
        assert (await viewer.post("/v1/rag/collections", json={"name": f"{name}-x"})).status_code == 403
        before = await uploads(gateway)

        async def upload(client: httpx.AsyncClient, filename: str, data: bytes) -> httpx.Response:
            return await client.post(f"/v1/rag/collections/{name}/documents", files={"file": (filename, data)})

        first = await upload(developer, "guide.md", b"# Guide\n\nTurn it off and on again.")
        assert first.status_code == 201, first.text
        assert (first.json()["version"], first.json()["unchanged"]) == (1, False)
        kept = await uploads(gateway)
        assert len(kept - before) == 1
        again = await upload(developer, "guide.md", b"# Guide\n\nTurn it off and on again.")
        assert again.json()["unchanged"], again.text
        assert await uploads(gateway) == kept  # the second copy was not kept
        assert (await upload(developer, "guide.md", b"# Guide\n\nUnplug it.")).json()["version"] == 2
        kept = await uploads(gateway)
        pptx = await upload(developer, "slides.pptx", b"PK\x03\x04")
        assert pptx.status_code == 415, pptx.text
        assert pptx.json()["type"].endswith("/unsupported-document")
        broken = await upload(developer, "paper.pdf", b"%PDF-1.7 and then nothing")
        assert broken.status_code == 422, broken.text
        assert broken.json()["type"].endswith("/unreadable-document")
        assert await uploads(gateway) == kept
        assert (await upload(viewer, "x.md", b"# x")).status_code == 403
        listed = (await viewer.get(f"/v1/rag/collections/{name}/documents")).json()
        assert [(d["name"], d["version"]) for d in listed] == [("guide.md", 2), ("guide.md", 1)]
        unindexed = await viewer.post(f"/v1/rag/collections/{name}/search", json={"query": "power"})
        assert unindexed.status_code == 409, unindexed.text
        assert unindexed.json()["type"].endswith("/collection-not-indexed")
        missing = await viewer.post("/v1/rag/collections/no-such-thing/search", json={"query": "power"})
        assert missing.status_code == 404
