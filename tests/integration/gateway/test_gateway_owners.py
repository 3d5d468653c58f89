"""Owners: a dataset, a job or a deployment is changed by the developer who made it, or by an admin; anyone else with
the developer role gets 403 `not-the-owner`.

The matrix is generated from the gateway's own OpenAPI document: every operation, called by the owner, a second
developer, a viewer and an admin, on resources the owner made. No call may answer 5xx, a viewer never changes
anything, and each write to an owned resource (`OWNED_WRITES`, driven with a valid request on a fresh resource per
call) answers exactly as ownership says. Every write operation must be classified below, so a new one cannot slip in
unchecked."""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from deployables import stand_in
from modelops_contracts import ArtifactKind

from .jobs_support import JobWorld
from .support import Key
from .test_gateway_datasets import ROWS, encoded

ROLES = ("owner", "other", "viewer", "admin")
# Writes that make something new (owned by the caller from then on) or act on what is not owned by a user.
CREATES = {
    "POST /v1/api-keys",  # admin only
    "DELETE /v1/api-keys/{key_id}",  # admin only
    "POST /v1/artifacts",
    "POST /v1/artifacts/{artifact_id}/promotions",  # approvers, under the registry's policy
    "POST /v1/datasets/{name}/query",  # a read, with its query in the body
    "POST /v1/files",  # each file is a new, immutable dataset
    "POST /v1/jobs/training",
    "POST /v1/fine_tuning/jobs",
    "POST /v1/chat/completions",
    "POST /v1/completions",
    "POST /v1/models/gguf",
    "POST /v1/jobs/quantization",
    "POST /v1/jobs/evaluation",
    "POST /v1/rag/collections",
    "POST /v1/rag/collections/{name}/search",  # reads, with their query in the body
    "POST /v1/rag/collections/{name}/answer",
    "POST /v1/marketplace/listings",  # the marketplace lets only an artifact's creator (or an admin) publish it
    "POST /v1/marketplace/listings/{listing_id}/ratings",  # each key's own rating
    "POST /v1/marketplace/listings/{listing_id}/install",  # a deployment, under the deployments' ownership rules
    "POST /v1/console/dead-letters/replay",  # admin only
    "PUT /v1/usage/budgets/{name}",  # admin only
    "DELETE /v1/usage/budgets/{name}",  # admin only
}
# Writes to a collection: the rag service checks its owner, from the user in the gateway's token
# (tests/integration/rag/test_rag.py::test_only_the_owner_changes_a_collection).
RAG_OWNED_WRITES = {
    "DELETE /v1/rag/collections/{name}",
    "POST /v1/rag/collections/{name}/documents",
    "POST /v1/rag/collections/{name}/index",
    "POST /v1/rag/index-jobs/{job_id}/cancel",
}
# A correction of a router's decision: its requester's, or an admin's; anyone else is told no such decision exists
# (404), not that it is someone else's (tests/integration/gateway/test_gateway_routers.py).
ROUTER_DECISION_WRITES = {"POST /v1/routers/{name}/decisions/{decision_id}/corrections"}


@dataclass
class Owned:
    """Resources the owner made: made fresh for each write, so that one role's call cannot change another's."""

    world: JobWorld
    owner: httpx.AsyncClient
    base_model: str  # one the policy deploys

    async def dataset(self) -> str:
        name = f"owned-{uuid.uuid4().hex[:8]}"
        assert (await _upload(self.owner, name)).status_code == 201
        return name

    async def job(self) -> str:
        response = await self.owner.post("/v1/jobs/training", json=self.world.training_request())
        assert response.status_code == 202, response.text
        return str(response.json()["id"])

    async def quantization_job(self) -> str:
        response = await self.owner.post("/v1/jobs/quantization", json={"model": self.base_model, "formats": ["Q8_0"]})
        assert response.status_code == 202, response.text
        return str(response.json()["id"])

    async def evaluation_job(self) -> str:
        body = {"model": self.base_model, "suite": await self.dataset(), "metrics": ["exact_match"]}
        response = await self.owner.post("/v1/jobs/evaluation", json=body)
        assert response.status_code == 202, response.text
        return str(response.json()["id"])

    async def deployment(self) -> str:
        name = f"owned-{uuid.uuid4().hex[:8]}"
        response = await self.owner.post("/v1/deployments", json={"name": name, "base_model": self.base_model})
        assert response.status_code == 202, response.text
        return name


Call = Callable[[httpx.AsyncClient, Owned], Awaitable[httpx.Response]]


async def _upload(client: httpx.AsyncClient, name: str) -> httpx.Response:
    data = encoded(ROWS["chat"], "jsonl")
    return await client.post("/v1/datasets", data={"name": name, "schema": "chat"}, files={"file": ("r.jsonl", data)})


async def _add_version(client: httpx.AsyncClient, owned: Owned) -> httpx.Response:
    return await _upload(client, await owned.dataset())


async def _redeploy(client: httpx.AsyncClient, owned: Owned) -> httpx.Response:
    return await client.post("/v1/deployments", json={"name": await owned.deployment(), "base_model": owned.base_model})


async def _undeploy(client: httpx.AsyncClient, owned: Owned) -> httpx.Response:
    return await client.delete(f"/v1/deployments/{await owned.deployment()}")


async def _cancel(client: httpx.AsyncClient, owned: Owned) -> httpx.Response:
    return await client.post(f"/v1/jobs/{await owned.job()}/cancel", json={"reason": "matrix"})


async def _cancel_quantization(client: httpx.AsyncClient, owned: Owned) -> httpx.Response:
    return await client.post(
        f"/v1/jobs/quantization/{await owned.quantization_job()}/cancel", json={"reason": "matrix"}
    )


async def _cancel_evaluation(client: httpx.AsyncClient, owned: Owned) -> httpx.Response:
    return await client.post(f"/v1/jobs/evaluation/{await owned.evaluation_job()}/cancel", json={"reason": "matrix"})


async def _cancel_fine_tuning(client: httpx.AsyncClient, owned: Owned) -> httpx.Response:
    return await client.post(f"/v1/fine_tuning/jobs/{await owned.job()}/cancel")


# operation -> (the call on a fresh resource, the status its owner and an admin get)
OWNED_WRITES: dict[str, tuple[Call, int]] = {
    "POST /v1/datasets": (_add_version, 201),
    "POST /v1/deployments": (_redeploy, 202),
    "DELETE /v1/deployments/{name}": (_undeploy, 202),
    "POST /v1/jobs/{job_id}/cancel": (_cancel, 202),
    "POST /v1/jobs/quantization/{job_id}/cancel": (_cancel_quantization, 202),
    "POST /v1/jobs/evaluation/{job_id}/cancel": (_cancel_evaluation, 202),
    "POST /v1/fine_tuning/jobs/{job_id}/cancel": (_cancel_fine_tuning, 200),
}


@pytest.fixture(scope="module")
async def owned(embedded_stack, bus, registry, clients: dict[str, httpx.AsyncClient], world: JobWorld) -> Owned:
    base = await stand_in(embedded_stack, bus, registry, ArtifactKind.BASE_MODEL)
    return Owned(world, clients["owner"], base)


@pytest.fixture(scope="module")
async def clients(gateway, world: JobWorld) -> dict[str, httpx.AsyncClient]:
    other: Key = await gateway.keys.make("developer", rate_limit="100000/minute")
    admin: Key = await gateway.keys.make("admin", rate_limit="100000/minute")
    secrets = {
        "owner": world.developer.secret,
        "other": other.secret,
        "viewer": world.viewer.secret,
        "admin": admin.secret,
    }
    made = {role: gateway.client(secret) for role, secret in secrets.items()}
    yield made
    for client in made.values():
        await client.aclose()


async def test_owned_writes_follow_ownership(clients: dict[str, httpx.AsyncClient], owned: Owned) -> None:
    for operation, (call, allowed) in OWNED_WRITES.items():
        for role in ROLES:
            response = await call(clients[role], owned)
            expected = allowed if role in ("owner", "admin") else 403
            assert response.status_code == expected, (operation, role, response.text)
            if role == "other":
                assert response.json()["type"].endswith("/not-the-owner"), (operation, response.text)


async def test_every_operation_for_every_role_is_classified_and_never_fails(
    clients: dict[str, httpx.AsyncClient], world: JobWorld, owned: Owned
) -> None:
    values = {
        "name": await owned.dataset(),
        "job_id": await owned.job(),
        "artifact_id": world.base_model_id,
        "key_id": "key-unknown",
        "file_id": "file-unknown",
        "import_id": "imp-unknown",
        "stage": "dev",
        "path": "config.json",
        "listing_id": "listing-unknown",
        "decision_id": "rdec-" + "0" * 25,
        "flow_id": "job-unknown",
    }
    deployment = await owned.deployment()
    document = (await clients["viewer"].get("/openapi.json")).json()
    operations = [(method.upper(), path) for path, item in document["paths"].items() for method in item]
    writes = {f"{method} {path}" for method, path in operations if method != "GET"}
    classified = CREATES | RAG_OWNED_WRITES | ROUTER_DECISION_WRITES | set(OWNED_WRITES)
    assert writes == classified, writes ^ classified
    tried = 0
    for method, path in operations:
        filled = {**values, "name": deployment} if path.startswith("/v1/deployments") else values
        concrete = re.sub(r"\{(\w+)\}", lambda match, filled=filled: filled[match[1]], path)
        for role in ROLES:
            response = await _drive(clients[role], method, concrete, path)
            tried += 1
            assert response.status_code < 500 or response.status_code in (502, 503), (method, path, role)
            if role == "viewer" and method != "GET" and "query" not in path and "completions" not in path:
                assert response.status_code in (403, 422), (method, path, response.status_code)
    assert tried == len(operations) * len(ROLES)
    print(f"ownership matrix: {len(operations)} operations x {len(ROLES)} roles = {tried} calls")


async def _drive(client: httpx.AsyncClient, method: str, concrete: str, template: str) -> httpx.Response:
    """One call with an empty body (a write's body is checked before anything is changed): the point is that no
    role gets a 5xx or a write past its role. A stream (job events) is opened and closed."""
    if template.endswith("/events") and template.startswith("/v1/jobs"):
        async with client.stream(method, concrete, timeout=10) as response:
            return response
    kwargs: dict[str, Any] = {} if method in ("GET", "DELETE") else {"json": {}}
    if template == "/v1/stages/{stage}/artifacts" or template.endswith("/stage"):
        kwargs["params"] = {"at": "2026-01-01T00:00:00Z"}
    return await client.request(method, concrete, **kwargs)
