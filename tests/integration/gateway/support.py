"""Helpers for the gateway tests: API keys of each role, multipart uploads, listing stored objects."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

WAIT_S = 60
PROBLEM_JSON = "application/problem+json"


@dataclass(frozen=True)
class Key:
    id: str
    name: str
    secret: str


@dataclass
class KeyMaker:
    """Creates keys through the gateway's own API, as an admin would."""

    admin: httpx.AsyncClient

    async def make(self, role: str, *, rate_limit: str | None = None, name: str | None = None) -> Key:
        name = name or f"{role}-{uuid.uuid4().hex[:8]}"
        body: dict[str, Any] = {"name": name, "role": role, **({"rate_limit": rate_limit} if rate_limit else {})}
        response = await self.admin.post("/v1/api-keys", json=body)
        assert response.status_code == 201, response.text
        created = response.json()
        return Key(created["id"], created["name"], created["key"])


def sample_files(seed: str) -> dict[str, bytes]:
    """What a base model import must hold (config, weights, tokenizer, here with a chat template), and a file in a
    folder."""
    return {
        "config.json": b'{"architectures": ["LlamaForCausalLM"], "seed": "%s"}' % seed.encode(),
        "model.safetensors": hashlib.sha256(seed.encode()).digest() * 1024,
        "tokenizer.json": b'{"version": "1.0", "seed": "%s"}' % seed.encode(),
        "chat_template.jinja": b"{% for message in messages %}{{ message['content'] }}{% endfor %}",
        "tokenizer/tokenizer.json": b'{"version": "1.0", "seed": "%s"}' % seed.encode(),
    }


def multipart(files: dict[str, bytes], **fields: str) -> dict[str, Any]:
    """httpx arguments for an import: the fields, and one `files` part per file named by its relative path."""
    return {"data": fields, "files": [("files", (path, data)) for path, data in files.items()]}


async def import_artifact(
    client: httpx.AsyncClient,
    files: dict[str, bytes],
    *,
    name: str,
    kind: str = "base_model",
    idempotency_key: str | None = None,
    **fields: str,
) -> httpx.Response:
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    return await client.post("/v1/artifacts", headers=headers, **multipart(files, kind=kind, name=name, **fields))


async def stored_keys(store: Any, prefix: str = "artifacts/") -> set[str]:
    return {info.key for info in await store.list(prefix)}
