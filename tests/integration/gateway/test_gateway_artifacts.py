"""Artifact import through the gateway into the real registry, idempotency, upload limits, registry reads and
promotions forwarded with the caller as actor."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import uuid

from helpers import registered

from .support import (
    import_artifact,
    sample_files,
    stored_keys,
)
from .test_gateway_auth import assert_problem


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def test_an_upload_is_stored_submitted_registered_and_readable_through_the_gateway(gateway):
    developer = await gateway.keys.make("developer")
    viewer = await gateway.keys.make("viewer")
    files = sample_files("e2e")
    name = unique("tiny-llama")
    async with gateway.client(developer.secret) as dev, gateway.client(viewer.secret) as view:
        accepted = await import_artifact(dev, files, name=name)
        assert accepted.status_code == 202, accepted.text
        artifact_id = accepted.json()["id"]
        assert accepted.json() == {"id": artifact_id, "status": "submitted"}
        assert accepted.headers["Location"] == f"/v1/artifacts/{artifact_id}"

        artifact = await registered(view, artifact_id)
        assert (artifact["name"], artifact["kind"], artifact["stage"]) == (name, "base_model", "dev")
        assert artifact["created_by"] == developer.name
        assert artifact["size"] == sum(len(data) for data in files.values())

        listed = (await view.get(f"/v1/artifacts/{artifact_id}/files")).json()
        assert {f["path"]: f["sha256"] for f in listed} == {p: hashlib.sha256(d).hexdigest() for p, d in files.items()}
        download = await view.get(f"/v1/artifacts/{artifact_id}/files/tokenizer/tokenizer.json")
        assert download.status_code == 200
        assert download.content == files["tokenizer/tokenizer.json"]
        assert download.headers["Digest"] == f"sha-256={hashlib.sha256(download.content).hexdigest()}"
        by_name = (await view.get("/v1/artifacts", params={"name": name, "kind": "base_model"})).json()
        assert [a["id"] for a in by_name["data"]] == [artifact_id]
        for path in ("bundle", "lineage", "promotions"):
            assert (await view.get(f"/v1/artifacts/{artifact_id}/{path}")).status_code == 200, path
        keys = (await view.get("/v1/keys")).json()
        assert artifact["key_id"] in {key["key_id"] for key in keys}
        missing = await view.get(f"/v1/artifacts/{artifact_id}/files/nope.bin")
        assert_problem(missing, 404, "file-not-found")  # the registry's problem, passed through


async def test_an_upload_names_its_parents(gateway):
    developer = await gateway.keys.make("developer")
    async with gateway.client(developer.secret) as dev:
        base = (await import_artifact(dev, sample_files("parent"), name=unique("base"))).json()["id"]
        await registered(dev, base)
        parents = f'[{{"artifact_id": "{base}", "relation": "trained_from"}}]'
        adapter = await import_artifact(
            dev, {"adapter.safetensors": b"weights"}, name=unique("lora"), kind="adapter", parents=parents
        )
        adapter_id = adapter.json()["id"]
        await registered(dev, adapter_id)
        lineage = (await dev.get(f"/v1/artifacts/{adapter_id}/lineage")).json()
    assert base in str(lineage)


async def test_paths_outside_the_artifact_and_bad_fields_are_refused_and_nothing_is_kept(gateway):
    developer = await gateway.keys.make("developer")
    before = await stored_keys(gateway.store)
    async with gateway.client(developer.secret) as dev:
        for path in ("../escape.bin", "/etc/passwd", "a//b", "a/./b", "x\\y"):
            files = {"ok.json": b"{}", path: b"data"}
            assert_problem(await import_artifact(dev, files, name=unique("bad")), 422, "invalid-file-path")
        clash = {"tokenizer": b"file", "tokenizer/vocab.json": b"{}"}
        assert_problem(await import_artifact(dev, clash, name=unique("bad")), 422, "conflicting-file-paths")
        bad_kind = await import_artifact(dev, {"a.bin": b"a"}, name=unique("bad"), kind="spaceship")
        assert_problem(bad_kind, 422, "validation-error")
        bad_parents = await import_artifact(dev, {"a.bin": b"a"}, name=unique("bad"), parents="not json")
        assert_problem(bad_parents, 422, "validation-error")
        no_files = await dev.post("/v1/artifacts", data={"kind": "base_model", "name": "x"}, files={"x": ("", b"")})
        assert no_files.status_code in (400, 422)
        assert_problem(await dev.post("/v1/artifacts", json={"kind": "base_model"}), 415, "unsupported-media-type")
    assert await stored_keys(gateway.store) == before


async def test_a_base_model_without_its_pieces_is_refused_naming_them_and_nothing_is_kept(gateway):
    developer = await gateway.keys.make("developer")
    before = await stored_keys(gateway.store)
    async with gateway.client(developer.secret) as dev:
        partial = {"config.json": b"{}", "README.md": b"weights to follow", "nested/model.safetensors": b"w"}
        refused = await import_artifact(dev, partial, name=unique("partial"))
        assert_problem(refused, 422, "incomplete-base-model")
        assert refused.json()["missing"] == [
            "weights (*.safetensors or pytorch_model*.bin)",
            "a tokenizer (tokenizer.json, tokenizer.model, vocab.json with merges.txt, or vocab.txt)",
        ]
        assert "weights" in refused.json()["detail"]
        # Another kind is not a model directory: its files are its own business.
        adapter = await import_artifact(dev, {"notes.txt": b"x"}, name=unique("adapter"), kind="adapter")
        assert adapter.status_code == 202, adapter.text
    assert await stored_keys(gateway.store) - before == {f"artifacts/{adapter.json()['id']}/notes.txt"}


async def test_an_upload_over_the_limit_is_413_whether_declared_or_streamed(gateway):
    developer = await gateway.keys.make("developer")
    before = await stored_keys(gateway.store)
    settings = gateway.state.settings
    limit, settings.gateway_max_upload_bytes = settings.gateway_max_upload_bytes, 4096
    try:
        async with gateway.client(developer.secret) as dev:
            declared = await import_artifact(dev, {"small.bin": b"s", "big.bin": b"x" * 10_000}, name=unique("big"))
            assert_problem(declared, 413, "upload-too-large")

            # Without Content-Length (chunked): the limit holds while the body streams, after a file was stored.
            request = dev.build_request(
                "POST",
                "/v1/artifacts",
                data={"kind": "base_model", "name": "big"},
                files=[("files", ("small.bin", b"s")), ("files", ("big.bin", b"x" * 10_000))],
            )
            body = request.read()

            async def chunks():
                for start in range(0, len(body), 1024):
                    yield body[start : start + 1024]

            streamed = await dev.post(
                "/v1/artifacts", content=chunks(), headers={"Content-Type": request.headers["Content-Type"]}
            )
            assert_problem(streamed, 413, "upload-too-large")
    finally:
        settings.gateway_max_upload_bytes = limit
    assert await stored_keys(gateway.store) == before


async def test_a_retried_import_returns_the_first_response_and_submits_once(gateway):
    developer = await gateway.keys.make("developer")
    files, name, key = sample_files("retry"), unique("retried"), uuid.uuid4().hex
    before = await stored_keys(gateway.store)
    async with gateway.client(developer.secret) as dev:
        first = await import_artifact(dev, files, name=name, idempotency_key=key)
        # The retry sends its parts in another order, under another multipart boundary: still the same request.
        again = await import_artifact(dev, dict(reversed(files.items())), name=name, idempotency_key=key)
        assert first.status_code == again.status_code == 202
        assert again.json() == first.json()
        assert again.headers["Location"] == first.headers["Location"]
        assert again.headers["Idempotency-Replayed"] == "true"
        assert "Idempotency-Replayed" not in first.headers

        other = await import_artifact(dev, {**files, "extra.bin": b"more"}, name=name, idempotency_key=key)
        assert_problem(other, 422, "idempotency-key-reused")

        artifact_id = first.json()["id"]
        await registered(dev, artifact_id)
        listed = (await dev.get("/v1/artifacts", params={"name": name})).json()["data"]
    assert [a["id"] for a in listed] == [artifact_id]
    added = await stored_keys(gateway.store) - before
    assert added == {f"artifacts/{artifact_id}/{path}" for path in files}  # the replays' copies were removed


async def test_identical_concurrent_imports_run_once(gateway):
    developer = await gateway.keys.make("developer")
    files, name, key = sample_files("race"), unique("raced"), uuid.uuid4().hex
    async with gateway.client(developer.secret) as dev:
        responses = await asyncio.gather(
            *(import_artifact(dev, files, name=name, idempotency_key=key) for _ in range(3))
        )
        assert {r.status_code for r in responses} == {202}
        assert len({r.json()["id"] for r in responses}) == 1
        assert sum("Idempotency-Replayed" not in r.headers for r in responses) == 1
        await registered(dev, responses[0].json()["id"])
        assert len((await dev.get("/v1/artifacts", params={"name": name})).json()["data"]) == 1


async def test_keys_are_scoped_to_their_caller(gateway):
    alice, bob = await gateway.keys.make("developer"), await gateway.keys.make("developer")
    key = uuid.uuid4().hex
    async with gateway.client(alice.secret) as a, gateway.client(bob.secret) as b:
        first = await import_artifact(a, {"a.bin": b"a"}, name=unique("alice"), kind="adapter", idempotency_key=key)
        second = await import_artifact(b, {"b.bin": b"b"}, name=unique("bob"), kind="adapter", idempotency_key=key)
    assert first.status_code == second.status_code == 202
    assert first.json()["id"] != second.json()["id"]


async def test_promotions_need_an_approver_who_becomes_the_recorded_actor(gateway):
    developer, viewer = await gateway.keys.make("developer"), await gateway.keys.make("viewer")
    approver = await gateway.keys.make("approver")
    async with (
        gateway.client(developer.secret) as dev,
        gateway.client(viewer.secret) as view,
        gateway.client(approver.secret) as approve,
    ):
        artifact_id = (await import_artifact(dev, sample_files("promote"), name=unique("promoted"))).json()["id"]
        await registered(view, artifact_id)
        path = f"/v1/artifacts/{artifact_id}/promotions"
        body = {"to_stage": "staging", "reason": "evaluated"}
        for client in (view, dev):
            assert_problem(await client.post(path, json=body), 403, "insufficient-role")

        key = uuid.uuid4().hex
        promoted = await approve.post(path, json=body, headers={"Idempotency-Key": key})
        assert promoted.status_code == 201, promoted.text
        assert (promoted.json()["actor"], promoted.json()["to_stage"]) == (approver.name, "staging")
        replayed = await approve.post(path, json=body, headers={"Idempotency-Key": key})
        assert (replayed.status_code, replayed.json()) == (201, promoted.json())
        assert replayed.headers["Idempotency-Replayed"] == "true"

        # The registry's policy decides beyond the role the gateway checks; its problem comes back unchanged.
        refused = await approve.post(path, json={"to_stage": "revoked", "reason": "no"})
        assert_problem(refused, 409, "policy-violation")
        assert "approver may not promote to revoked" in refused.json()["detail"]
        assert_problem(await approve.post("/v1/artifacts/art-missing/promotions", json=body), 404, "artifact-not-found")

        history = (await view.get(path)).json()
        assert [(p["actor"], p["to_stage"]) for p in history] == [(approver.name, "staging")]
        assert (await view.get(f"/v1/artifacts/{artifact_id}")).json()["stage"] == "staging"


async def test_a_promotion_whose_answer_was_lost_is_not_made_twice_by_its_retry(gateway, monkeypatch):
    """The registry promoted; then keeping the answer failed (the gateway's database went away). The retry with the
    same Idempotency-Key asks the registry under the same request id and gets that promotion back: 201, one move."""
    from modelops_gateway.web.idempotency import Idempotency

    developer, approver = await gateway.keys.make("developer"), await gateway.keys.make("approver")
    real_keep = Idempotency._keep

    async def lost(self, conn, response, claim):
        monkeypatch.setattr(Idempotency, "_keep", real_keep)  # once
        raise ConnectionResetError("the database went away")

    async with gateway.client(developer.secret) as dev, gateway.client(approver.secret) as approve:
        artifact_id = (await import_artifact(dev, sample_files("retried"), name=unique("retried"))).json()["id"]
        await registered(dev, artifact_id)
        path, key = f"/v1/artifacts/{artifact_id}/promotions", uuid.uuid4().hex
        body = {"to_stage": "staging", "reason": "evaluated"}
        monkeypatch.setattr(Idempotency, "_keep", lost)
        assert (await approve.post(path, json=body, headers={"Idempotency-Key": key})).status_code == 500
        retried = await approve.post(path, json=body, headers={"Idempotency-Key": key})
        assert retried.status_code == 201, retried.text
        assert retried.json()["to_stage"] == "staging"
        history = (await dev.get(path)).json()
    assert [(p["from_stage"], p["to_stage"]) for p in history] == [("dev", "staging")]


async def test_an_unreachable_registry_is_a_503_problem(gateway):
    viewer = await gateway.keys.make("viewer")
    http = gateway.state.registry.http
    reachable = http.base_url
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        http.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"  # bound, never listening
        try:
            async with gateway.client(viewer.secret) as view:
                response = await view.get("/v1/artifacts")
        finally:
            http.base_url = reachable
    assert_problem(response, 503, "registry-unavailable")
    assert int(response.headers["Retry-After"]) > 0
