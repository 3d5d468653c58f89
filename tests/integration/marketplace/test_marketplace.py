"""The marketplace on the real stack: an adapter of SmolLM2 taken through the registry's governance to prod is listed
(its files verified, its card rendered, its signing key shown) and found by search; checked against SmolLM2 it is
compatible, and a live canary shows it changes the outputs without NaN; against a base of another shape it is not,
with the reasons; one key's two ratings count once, two keys' twice; two downloads count two; a revoked adapter
leaves the listings; a publisher lists their own artifact with a title and tasks, and nobody else may."""

from __future__ import annotations

import asyncio
import io
import uuid
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import acting_as, make_lora, registered
from modelops_contracts import ArtifactKind, ArtifactSubmitted, LineageRelation, ParentRef
from modelops_shared.artifact_upload import upload_directory
from modelops_shared.bus import Bus
from modelops_shared.settings import Settings
from modelops_shared.storage import open_store

from .conftest import Acting

WAIT_S = 120


async def submitted(
    settings: Settings,
    bus: Bus,
    registry: httpx.AsyncClient,
    kind: ArtifactKind,
    name: str,
    directory: Path,
    **fields: Any,
) -> str:
    """An artifact stored, submitted as its producer would, and registered; its id."""
    store = open_store(settings.store_url, settings)
    artifact_id = f"{name}-{uuid.uuid4().hex[:10]}"
    files = await upload_directory(store, directory, f"artifacts/{artifact_id}")
    submission = ArtifactSubmitted(
        artifact_id=artifact_id,
        kind=kind,
        name=name,
        uri=store.url_of(f"artifacts/{artifact_id}"),
        files=files,
        **fields,
    )
    await bus.publish(submission)
    await registered(registry, artifact_id)
    return artifact_id


async def promote(registry: httpx.AsyncClient, artifact_id: str, stage: str, actor: str, role: str = "approver"):
    response = await registry.post(
        f"/v1/artifacts/{artifact_id}/promotions",
        json={"to_stage": stage, "reason": f"{actor} says so"},
        headers=acting_as(actor, role),
    )
    assert response.status_code == 201, response.text


async def listed(client: httpx.AsyncClient, artifact_id: str, present: bool = True) -> dict[str, Any]:
    """The listing once the marketplace projected it (or, `present=False`, once it is gone)."""
    async with asyncio.timeout(WAIT_S):
        while True:
            response = await client.get(f"/v1/listings/{artifact_id}")
            if (response.status_code == 200) == present:
                return response.json() if present else {}
            await asyncio.sleep(0.2)


@pytest.fixture(scope="module")
async def lora_dir(smollm2_dir, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = make_lora(smollm2_dir[1], tmp_path_factory.mktemp("market-lora"))
    (directory / "README.md").write_text("---\nbase_model: smollm2\n---\n\n# Pirate speak\n\nTalks like a pirate.\n")
    return directory


@pytest.fixture(scope="module")
async def prod_adapter(
    embedded_stack: Settings,
    bus: Bus,
    registry: httpx.AsyncClient,
    smollm2_base_model: str,
    lora_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> str:
    """A SmolLM2 adapter in prod: staged (eval_loss), evaluated (a signed report), promoted by another approver."""
    adapter = await submitted(
        embedded_stack,
        bus,
        registry,
        ArtifactKind.ADAPTER,
        "smollm2-pirate",
        lora_dir,
        parents=[ParentRef(artifact_id=smollm2_base_model, relation=LineageRelation.TRAINED_FROM)],
        created_by="alice",
        metrics={"eval_loss": 1.1},
        metadata={"method": "sft", "base_model": smollm2_base_model},
    )
    await promote(registry, adapter, "staging", "bob")
    report = tmp_path_factory.mktemp("pirate-report")
    (report / "report.json").write_text('{"exact_match": 0.9}\n')
    await submitted(
        embedded_stack,
        bus,
        registry,
        ArtifactKind.EVAL_REPORT,
        "pirate-report",
        report,
        parents=[ParentRef(artifact_id=adapter, relation=LineageRelation.EVALUATION_OF)],
        created_by="alice",
        metrics={"exact_match": 0.9, "items": 10.0},
        metadata={"suite": f"pirate-{uuid.uuid4().hex[:6]}", "model": smollm2_base_model, "adapter": adapter},
    )
    await promote(registry, adapter, "prod", "carol")
    return adapter


async def test_a_prod_adapter_is_listed_verified_and_found(
    market: Acting, prod_adapter: str, smollm2_base_model: str, base_model: str
) -> None:
    viewer = market("victor", "viewer")
    listing = await listed(viewer, prod_adapter)
    assert listing["verified"]
    assert listing["stage"] == "prod"
    assert (listing["kind"], listing["rank"], listing["base_model"]) == ("adapter", 8, smollm2_base_model)
    assert len(listing["key_id"]) == 64
    assert listing["card"].startswith("# Pirate speak")
    assert "## Signed facts" in listing["card"]
    assert listing["rating"] == {"average": None, "count": 0}

    async def ids(**query: Any) -> list[str]:
        response = await viewer.get("/v1/listings", params=query)
        assert response.status_code == 200, response.text
        return [found["id"] for found in response.json()["data"]]

    assert prod_adapter in await ids(q="pirate")
    assert prod_adapter in await ids(q="pirate", base_model=smollm2_base_model, rank=8, sort="relevance")
    assert prod_adapter not in await ids(q="pirate", base_model=base_model)
    assert prod_adapter not in await ids(q="astronomy")
    assert prod_adapter not in await ids(min_rating=1)


async def test_compatibility_is_checked_on_the_files_against_your_base(
    market: Acting, prod_adapter: str, smollm2_base_model: str, base_model: str
) -> None:
    viewer = market("victor", "viewer")
    await listed(viewer, prod_adapter)
    path = f"/v1/listings/{prod_adapter}/compatibility"
    same = (await viewer.get(path, params={"base_model": smollm2_base_model, "canary": "true"})).json()
    assert same["compatible"], same
    assert {check["name"] for check in same["checks"]} >= {"modules_and_shapes", "tokenizer", "peft", "canary"}
    assert same["canary"]["changed"]
    assert same["canary"]["finite"]
    other = (await viewer.get(path, params={"base_model": base_model})).json()
    assert not other["compatible"]
    failed = {reason.split(":")[0] for reason in other["reasons"]}
    assert {"architecture", "modules_and_shapes", "tokenizer"} <= failed, other["reasons"]


async def test_one_key_rates_once_and_ratings_are_rate_limited(market: Acting, prod_adapter: str) -> None:
    await listed(market("victor", "viewer"), prod_adapter)
    path = f"/v1/listings/{prod_adapter}/ratings"
    alice, bob = market("alice-rater", "viewer"), market("bob-rater", "viewer")
    assert (await alice.post(path, json={"stars": 5})).json()["rating"] == {"average": 5.0, "count": 1}
    again = await alice.post(path, json={"stars": 3, "review": "on second thought"})
    assert again.json()["rating"] == {"average": 3.0, "count": 1}
    assert (await bob.post(path, json={"stars": 5})).json()["rating"] == {"average": 4.0, "count": 2}
    assert (await bob.post(path, json={"stars": 6})).status_code == 422
    spammer = market("spammer", "viewer")
    statuses = [(await spammer.post(path, json={"stars": 1})).status_code for _ in range(6)]
    assert statuses == [201] * 5 + [429]
    assert (await market("victor", "viewer").get(f"/v1/listings/{prod_adapter}")).json()["rating"]["count"] == 3


async def test_downloads_are_verified_archives_and_each_counts(
    market: Acting, prod_adapter: str, lora_dir: Path
) -> None:
    viewer = market("victor", "viewer")
    await listed(viewer, prod_adapter)
    before = (await viewer.get(f"/v1/listings/{prod_adapter}")).json()["downloads"]
    for _ in range(2):
        response = await viewer.get(f"/v1/listings/{prod_adapter}/download")
        assert response.status_code == 200
        with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
            weights = archive.read("adapter_model.safetensors")
    assert weights == (lora_dir / "adapter_model.safetensors").read_bytes()
    async with asyncio.timeout(WAIT_S):
        while (await viewer.get(f"/v1/listings/{prod_adapter}")).json()["downloads"] != before + 2:
            await asyncio.sleep(0.2)
    await asyncio.sleep(1)  # nothing counts twice
    assert (await viewer.get(f"/v1/listings/{prod_adapter}")).json()["downloads"] == before + 2


async def test_publishers_list_their_own_and_revoked_artifacts_leave(
    market: Acting,
    embedded_stack: Settings,
    bus: Bus,
    registry: httpx.AsyncClient,
    smollm2_base_model: str,
    lora_dir: Path,
) -> None:
    mine = await submitted(
        embedded_stack,
        bus,
        registry,
        ArtifactKind.ADAPTER,
        "smollm2-haiku",
        lora_dir,
        created_by="dana",
        metadata={"method": "sft", "base_model": smollm2_base_model},
    )
    request = {
        "artifact_id": mine,
        "title": "Haiku writer",
        "description": "Answers every question as a seventeen-syllable poem.",
        "tasks": ["poetry"],
        "license": "apache-2.0",
        "languages": ["en"],
        "examples": ["Describe the sea."],
    }
    assert (await market("mallory").post("/v1/listings", json=request)).status_code == 403
    published = await market("dana").post("/v1/listings", json=request)
    assert published.status_code == 201, published.text
    assert (published.json()["publisher"], published.json()["stage"]) == ("dana", "dev")
    viewer = market("victor", "viewer")
    found = (await viewer.get("/v1/listings", params={"q": "syllable poem", "task": "poetry"})).json()
    assert [listing["id"] for listing in found["data"]] == [mine]
    await promote(registry, mine, "revoked", "root", role="admin")
    await listed(viewer, mine, present=False)
    assert (await viewer.get("/v1/listings", params={"q": "syllable"})).json()["data"] == []
    again = await market("dana").post("/v1/listings", json=request)
    assert again.status_code == 422, again.text  # a revoked artifact is never listed
