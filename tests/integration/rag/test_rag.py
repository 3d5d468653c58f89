"""The rag service end to end on the real stack, on text nobody here wrote (Python's own documentation topics,
`pydoc_data.topics`): documents uploaded as the gateway does (bytes in the store, then recorded once they parse),
indexed by a Kafka job into LanceDB with all-MiniLM-L6-v2, signed as a rag_index in lineage with its embedding model;
questions asked in other words find their topic; re-indexing embeds only what changed; only owners change a
collection; answers from a deployed SmolLM2 cite their passages, and a question the documents cannot answer gets
"I don't know" without asking the model."""

from __future__ import annotations

import asyncio
import hashlib
import json
import pydoc_data.topics
import time
import uuid
from typing import Any

import httpx
import pytest
from helpers import ActingFor, registered, service_auth
from inference.support import deploy, inference_settings
from modelops_inference.app import create_app as create_inference
from modelops_rag import vectors
from modelops_rag.app import create_app as create_rag
from modelops_rag.settings import RagSettings
from modelops_shared.bus import Bus
from modelops_shared.settings import Settings
from modelops_shared.storage import ObjectNotFound, open_store
from servers import serving

from .conftest import Acting

TOPICS = ("try", "break", "continue", "with", "lambda", "global", "assert", "import", "pass", "raise", "while", "del")
# Each asked in other words than its topic's, and the document that answers it.
QUESTIONS = {
    "How do I handle an error so that my program keeps running?": "try",
    "How can I stop a loop before it has gone through every item?": "break",
    "How do I skip the rest of this iteration and go on with the next one?": "continue",
    "How do I make sure a resource is cleaned up after a block of code runs?": "with",
    "How do I write a small anonymous function inside an expression?": "lambda",
    "How can a function assign to a variable defined at module level?": "global",
    "How do I check a condition while debugging, and stop when it is false?": "assert",
    "How do I use code that lives in another module?": "import",
    "Which statement does nothing at all, as a placeholder?": "pass",
    "How do I signal an error from my own code?": "raise",
}
WAIT_S = 600


def markdown_of(topic: str) -> bytes:
    """The topic as Markdown: its title (the reST heading's text) as `#`, its body as is."""
    title, _, body = pydoc_data.topics.topics[topic].partition("\n")
    return f"# {title.strip()}\n{body.lstrip('*')}".encode()


def html_of(topic: str) -> bytes:
    title, _, body = pydoc_data.topics.topics[topic].partition("\n")
    paragraphs = "".join(f"<p>{p}</p>" for p in body.lstrip("*").split("\n\n"))
    return f"<html><head><style>p {{}}</style></head><body><h1>{title}</h1>{paragraphs}</body></html>".encode()


async def upload(
    client: httpx.AsyncClient, settings: Settings, collection: str, name: str, data: bytes, content_type: str
) -> httpx.Response:
    """As the gateway uploads: the bytes into the store, then the document recorded by the rag service."""
    store = open_store(settings.store_url, settings)
    key = f"rag-uploads/{uuid.uuid4().hex}/{name}"
    await store.put(key, data)
    body = {
        "name": name,
        "uri": store.url_of(key),
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "content_type": content_type,
    }
    return await client.post(f"/v1/collections/{collection}/documents", json=body)


async def indexed(client: httpx.AsyncClient, collection: str) -> dict[str, Any]:
    """Start an index job and wait until it failed, or its index is the one the collection serves; its view."""
    response = await client.post(f"/v1/collections/{collection}/index")
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        job = (await client.get(f"/v1/index-jobs/{job_id}")).json()
        served = (await client.get(f"/v1/collections/{collection}")).json()["index_id"]
        # A completed job's index is served once the registry registered it, just after the job ends.
        if job["status"] not in ("queued", "running", "completed") or served == job["index_id"] is not None:
            return job
        await asyncio.sleep(0.5)
    raise TimeoutError(f"index job {job_id} not served yet: {job}")


async def searchable(client: httpx.AsyncClient, collection: str, query: str, **options: Any) -> dict[str, Any]:
    response = await client.post(f"/v1/collections/{collection}/search", json={"query": query, **options})
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture(scope="module")
async def topics(rag: Acting, rag_settings: RagSettings, registry: httpx.AsyncClient) -> tuple[str, dict[str, Any]]:
    """A collection of twelve topics (ten as Markdown, two as HTML) indexed; its name and the finished job."""
    alice = rag("alice")
    name = f"pydoc-{uuid.uuid4().hex[:6]}"
    created = await alice.post("/v1/collections", json={"name": name})
    assert created.status_code == 201, created.text
    for topic in TOPICS:
        html = topic in ("while", "del")
        data, kind = (html_of(topic), "text/html") if html else (markdown_of(topic), "text/markdown")
        response = await upload(alice, rag_settings, name, f"{topic}.{'html' if html else 'md'}", data, kind)
        assert response.status_code == 201, response.text
    job = await indexed(alice, name)
    assert job["status"] == "completed", job
    return name, job


async def test_questions_in_other_words_find_their_topic(
    rag: Acting, topics: tuple[str, dict[str, Any]], registry: httpx.AsyncClient, minilm: str
) -> None:
    name, job = topics
    bob = rag("bob", "viewer")
    found = 0
    for question, topic in QUESTIONS.items():
        results = (await searchable(bob, name, question, k=3))["results"]
        found += any(hit["document"] == f"{topic}.md" for hit in results)
    assert found >= 9, f"{found}/{len(QUESTIONS)} questions found their topic in the top 3"
    # The index is a signed artifact, in lineage with its embedding model, naming every document by content.
    index = await registered(registry, job["index_id"])
    assert index["kind"] == "rag_index"
    lineage = (await registry.get(f"/v1/artifacts/{job['index_id']}/lineage")).json()
    assert {"parent_id": minilm, "child_id": job["index_id"], "relation": "embedded_with"} in lineage["ancestors"]
    assert index["metrics"]["documents"] == len(TOPICS)
    # A filter narrows by metadata; a heading filter by the heading path; text search reads the same chunks.
    only = await searchable(bob, name, "loop", k=10, filter={"document": ["while.html", "break.md"]})
    assert {hit["document"] for hit in only["results"]} <= {"while.html", "break.md"}
    assert only["results"]
    headed = await searchable(bob, name, "statement", k=5, filter={"heading": 'The "while" statement'})
    assert headed["results"]
    assert all(hit["document"] == "while.html" for hit in headed["results"])
    text = await searchable(bob, name, "finally", k=3, mode="text")
    assert text["results"][0]["document"] in ("try.md", "with.md")


async def test_reindexing_embeds_only_what_changed(rag: Acting, rag_settings: RagSettings) -> None:
    alice = rag("alice")
    name = f"small-{uuid.uuid4().hex[:6]}"
    assert (await alice.post("/v1/collections", json={"name": name})).status_code == 201
    for topic in ("pass", "del", "global"):
        response = await upload(alice, rag_settings, name, f"{topic}.md", markdown_of(topic), "text/markdown")
        assert response.status_code == 201, response.text
    first = await indexed(alice, name)
    assert first["status"] == "completed", first
    before = await chunks_of(alice, name, "del.md")
    # The same bytes again make no version; new bytes make version 2; the next job embeds only that document.
    same = (await upload(alice, rag_settings, name, "pass.md", markdown_of("pass"), "text/markdown")).json()
    assert same["unchanged"]
    assert same["version"] == 1
    longer = markdown_of("del") + b"\n\n## Afterwards\n\nDeleting is forever."
    changed_upload = await upload(alice, rag_settings, name, "del.md", longer, "text/markdown")
    changed = changed_upload.json()
    changed_uri = json.loads(changed_upload.request.content)["uri"]  # where `upload` stored its bytes
    assert changed["version"] == 2
    assert not changed["unchanged"]
    second = await indexed(alice, name)
    assert second["status"] == "completed", second
    after = await chunks_of(alice, name, "del.md")
    assert second["outcome"]["embedded_chunks"] == after > before
    assert second["outcome"]["chunks"] == first["outcome"]["chunks"] - before + after
    hit = (await searchable(alice, name, "Deleting is forever", k=1, mode="text"))["results"][0]
    assert (hit["document"], hit["version"], hit["heading"]) == ("del.md", 2, 'The "del" statement > Afterwards')
    # Deleting the collection deletes its table and its documents' bytes.
    collection_id = (await alice.get(f"/v1/collections/{name}")).json()["id"]
    db = vectors.connect(vectors.collection_uri(rag_settings, collection_id), {})
    assert vectors.TABLE in db.table_names()
    assert (await alice.delete(f"/v1/collections/{name}")).status_code == 204
    assert vectors.TABLE not in db.table_names()
    store = open_store(rag_settings.store_url, rag_settings)
    with pytest.raises(ObjectNotFound):
        await store.get(store.key_of(changed_uri))


async def chunks_of(client: httpx.AsyncClient, collection: str, document: str) -> int:
    hits = await searchable(client, collection, "anything", k=100, mode="vector", filter={"document": document})
    return len(hits["results"])


async def test_bad_uploads_are_refused_whole_and_only_the_owner_changes_a_collection(
    rag: Acting, rag_settings: RagSettings
) -> None:
    alice, mallory, viewer = rag("alice"), rag("mallory"), rag("victor", "viewer")
    name = f"owned-{uuid.uuid4().hex[:6]}"
    assert (await viewer.post("/v1/collections", json={"name": name})).status_code == 403
    assert (await alice.post("/v1/collections", json={"name": name})).status_code == 201
    assert (await alice.post("/v1/collections", json={"name": name})).json()["type"].endswith("/collection-exists")
    not_pdf = await upload(alice, rag_settings, name, "paper.pdf", b"%PDF-1.7 but not really", "application/pdf")
    assert not_pdf.status_code == 422, not_pdf.text
    assert not_pdf.json()["type"].endswith("/unreadable-document")
    latin1 = await upload(alice, rag_settings, name, "notes.txt", "café".encode("latin-1"), "text/plain")
    assert latin1.status_code == 422, latin1.text
    assert (await alice.get(f"/v1/collections/{name}/documents")).json() == []
    assert (await alice.post(f"/v1/collections/{name}/index")).json()["type"].endswith("/no-documents")
    theirs = await upload(mallory, rag_settings, name, "x.md", b"# x\n\nhello", "text/markdown")
    assert theirs.status_code == 403
    assert theirs.json()["type"].endswith("/not-collection-owner")
    assert (await mallory.delete(f"/v1/collections/{name}")).status_code == 403
    assert (await rag("root", "admin").delete(f"/v1/collections/{name}")).status_code == 204
    assert (await alice.get(f"/v1/collections/{name}")).status_code == 404
    gateway_only = httpx.AsyncClient(base_url=str(alice.base_url), auth=service_auth("rag", service="trainer"))
    async with gateway_only:
        assert (await gateway_only.get("/v1/collections")).json()["type"].endswith("/acting-user-required")


@pytest.mark.slow
async def test_answers_cite_their_passages_or_say_they_do_not_know(
    rag_settings: RagSettings,
    embedded_stack: Settings,
    registry_url: str,
    smollm2_base_model: str,
    bus: Bus,
    topics: tuple[str, dict[str, Any]],
    minilm: str,
) -> None:
    name, _ = topics
    async with (
        serving(create_inference(inference_settings(embedded_stack, registry_url))) as inference_url,
        httpx.AsyncClient(base_url=inference_url, timeout=60, auth=service_auth("inference")) as inference,
    ):
        served = await deploy(bus, inference, smollm2_base_model, [])
        assert served["status"] == "ready", served
        app = create_rag(rag_settings.model_copy(update={"inference_url": inference_url}))
        bob_auth = ActingFor("rag", "bob", "viewer")
        async with serving(app) as url, httpx.AsyncClient(base_url=url, timeout=300, auth=bob_auth) as bob:
            question = {"question": "How do I stop a loop early?", "model": served["name"], "max_tokens": 16}
            for _ in range(240):
                response = await bob.post(f"/v1/collections/{name}/answer", json=question)
                if response.status_code != 503:
                    break
                await asyncio.sleep(0.5)
            answer = response.json()
            assert response.status_code == 200, response.text
            assert answer["grounded"], answer
            assert answer["answer"].strip()
            assert answer["usage"]["completion_tokens"] > 0
            assert answer["citations"][0]["document"] in ("break.md", "while.html", "continue.md"), answer
            unrelated = {"question": "What is a good recipe for banana bread?", "model": served["name"]}
            unknown = (await bob.post(f"/v1/collections/{name}/answer", json=unrelated)).json()
            assert not unknown["grounded"]
            assert unknown["citations"] == []
            assert "don't know" in unknown["answer"]
            events = []
            streaming = {**question, "stream": True}
            async with bob.stream("POST", f"/v1/collections/{name}/answer", json=streaming) as stream:
                async for line in stream.aiter_lines():
                    if line.startswith("data: "):
                        events.append(json.loads(line[6:]))
            assert events[0]["type"] == "citations"
            assert events[0]["citations"] == answer["citations"]
            assert events[-1]["type"] == "done"
            assert any(e["type"] == "delta" for e in events)
            streamed = "".join(e["text"] for e in events if e["type"] == "delta")
            assert streamed == answer["answer"]  # greedy: the same answer, whole or streamed
