"""The official `openai` client against the gateway's files API, unchanged: a fine-tune upload becomes the dataset
named by its file id (chat rows, version 0, a `dataset` artifact in the registry), listing and retrieval parse as
OpenAI objects, and every refusal raises the client's own exception with a readable message.

The client is synchronous; it runs in a worker thread so that this event loop keeps serving the gateway."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from pathlib import Path

import openai
import pytest
from helpers import registered

EXAMPLES = [
    {
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": f"What is {i} + {i}?"},
            {"role": "assistant", "content": str(i + i)},
        ]
    }
    for i in range(4)
]


def jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


def client(gateway, key: str | None) -> openai.OpenAI:
    # No retries: a refusal must surface at once, as the exception the client raises for it.
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key or "", max_retries=0, timeout=30)


async def test_an_uploaded_fine_tune_file_is_a_file_object_a_chat_dataset_and_a_registered_artifact(
    gateway, keys, tmp_path: Path
):
    path = tmp_path / "train.jsonl"
    path.write_bytes(jsonl(EXAMPLES))
    developer = client(gateway, keys["developer"].secret)
    viewer = client(gateway, keys["viewer"].secret)

    def create() -> openai.types.FileObject:
        with path.open("rb") as file:
            return developer.files.create(file=file, purpose="fine-tune")

    before = time.time()
    created = await asyncio.to_thread(create)
    assert re.fullmatch(r"file-[0-9a-f]{24}", created.id)
    assert (created.object, created.purpose, created.status) == ("file", "fine-tune", "processed")
    assert (created.filename, created.bytes) == ("train.jsonl", path.stat().st_size)
    assert before - 1 <= created.created_at <= time.time() + 1

    assert await asyncio.to_thread(viewer.files.retrieve, created.id) == created
    listed = await asyncio.to_thread(viewer.files.list)
    assert created in listed.data

    async with gateway.client(keys["viewer"].secret) as view:
        dataset = (await view.get(f"/v1/datasets/{created.id}")).json()
        assert (dataset["schema"], dataset["version"], dataset["num_rows"]) == ("chat", 0, len(EXAMPLES))
        rows = (await view.get(f"/v1/datasets/{created.id}/rows")).json()["rows"]
        assert rows == EXAMPLES
        artifact = await registered(view, f"dataset-{created.id}-v0")
    assert (artifact["kind"], artifact["name"], artifact["created_by"]) == (
        "dataset",
        created.id,
        keys["developer"].name,
    )

    # A file never changes: no dataset upload appends to it (nor squats a `file-` name before it exists).
    async with gateway.client(keys["developer"].secret) as dev:
        for name in (created.id, "file-0123456789abcdef01234567"):
            appended = await dev.post(
                "/v1/datasets", data={"name": name, "schema": "chat"}, files={"file": ("more.jsonl", jsonl(EXAMPLES))}
            )
            assert appended.status_code == 422, appended.text
            assert "OpenAI files, which cannot change" in appended.text
        assert (await dev.get(f"/v1/datasets/{created.id}")).json()["version"] == 0


async def test_the_list_pages_newest_first_with_after(gateway, keys):
    developer = client(gateway, keys["developer"].secret)
    ids = []
    for i in range(3):
        created = await asyncio.to_thread(
            developer.files.create, file=("f.jsonl", jsonl(EXAMPLES[i:])), purpose="fine-tune"
        )
        ids.append(created.id)
    page = await asyncio.to_thread(developer.files.list, limit=2)
    assert [f.id for f in page.data] == ids[::-1][:2]
    assert page.has_more
    following = await asyncio.to_thread(page.get_next_page)
    assert following.data[0].id == ids[0]
    oldest_first = await asyncio.to_thread(developer.files.list, order="asc", after=ids[0], limit=10)
    assert [f.id for f in oldest_first.data][:2] == ids[1:]


async def test_a_bad_file_raises_the_clients_error_with_a_readable_message_and_keeps_nothing(gateway, keys):
    developer = client(gateway, keys["developer"].secret)
    before = {f.id for f in await asyncio.to_thread(developer.files.list)}
    bad = jsonl([EXAMPLES[0], {"messages": [{"role": "user", "content": "Hi"}]}])
    with pytest.raises(openai.UnprocessableEntityError) as caught:
        await asyncio.to_thread(developer.files.create, file=("bad.jsonl", bad), purpose="fine-tune")
    error = caught.value
    reason = "needs at least one assistant message to learn from"
    assert error.message == f"Error code: 422 - 1 of 2 rows are invalid; line 2, messages: {reason}"
    assert (error.code, error.type, error.param) == ("dataset-invalid", "invalid_request_error", "file")
    problem = error.response.json()  # still the problem, with the row-level report
    assert problem["type"].endswith("/dataset-invalid")
    assert problem["errors"] == [{"line": 2, "field": "messages", "message": reason}]

    with pytest.raises(openai.UnprocessableEntityError) as caught:
        await asyncio.to_thread(developer.files.create, file=("a.jsonl", jsonl(EXAMPLES)), purpose="batch")
    assert caught.value.param == "purpose"
    assert "purpose: Input should be 'fine-tune'" in caught.value.message

    with pytest.raises(openai.UnprocessableEntityError, match=r"1 of 1 rows are invalid; line 1: Invalid JSON"):
        await asyncio.to_thread(developer.files.create, file=("x.jsonl", b"not json\n"), purpose="fine-tune")
    assert {f.id for f in await asyncio.to_thread(developer.files.list)} == before


async def test_keys_and_roles_surface_as_the_clients_errors(gateway, keys):
    with pytest.raises(openai.NotFoundError, match="no file 'file-000000000000000000000000'"):
        await asyncio.to_thread(client(gateway, keys["viewer"].secret).files.retrieve, f"file-{'0' * 24}")
    with pytest.raises(openai.PermissionDeniedError, match="this needs the developer role") as denied:
        await asyncio.to_thread(
            client(gateway, keys["viewer"].secret).files.create, file=("a.jsonl", jsonl(EXAMPLES)), purpose="fine-tune"
        )
    assert denied.value.type == "permission_error"
    with pytest.raises(openai.AuthenticationError, match="unknown or revoked") as refused:
        await asyncio.to_thread(client(gateway, f"mok_{uuid.uuid4().hex}").files.list)
    assert refused.value.response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_a_retried_upload_with_an_idempotency_key_returns_the_same_file(gateway, keys):
    developer = client(gateway, keys["developer"].secret)
    headers = {"Idempotency-Key": uuid.uuid4().hex}
    upload = {"file": ("same.jsonl", jsonl(EXAMPLES)), "purpose": "fine-tune", "extra_headers": headers}
    first = await asyncio.to_thread(developer.files.create, **upload)
    again = await asyncio.to_thread(developer.files.with_raw_response.create, **upload)
    assert again.headers["Idempotency-Replayed"] == "true"
    assert again.parse() == first
