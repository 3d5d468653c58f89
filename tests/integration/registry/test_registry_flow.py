"""The registry on the real stack: submissions verified and signed, rejections, lineage, jobs, governance,
and signatures checked with nothing but `cryptography`."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from helpers import acting_as, identity
from modelops_contracts import (
    ArtifactKind,
    DatasetSchema,
    DatasetVersionCreated,
    Hyperparameters,
    LineageRelation,
    StartTraining,
    TrainingCompleted,
    TrainingProgressed,
    TrainingStarted,
)

from .support import WAIT_S, sample_files, verdict


async def test_a_submission_is_verified_signed_and_registered(registry):
    files = sample_files("base")
    submission = await registry.submitter.submit(files=files)

    artifact = await verdict(registry.client, submission.artifact_id)

    assert artifact["stage"] == "dev"
    assert artifact["version"] == "1" or artifact["version"].isdigit()
    assert artifact["size"] == sum(len(data) for data in files.values())
    listed = (await registry.client.get(f"/v1/artifacts/{submission.artifact_id}/files")).json()
    assert {f["path"]: f["sha256"] for f in listed} == {p: hashlib.sha256(d).hexdigest() for p, d in files.items()}
    download = await registry.client.get(f"/v1/artifacts/{submission.artifact_id}/files/tokenizer/tokenizer.json")
    assert download.content == files["tokenizer/tokenizer.json"]


async def test_ed25519_bundle_verifies_with_nothing_but_cryptography(registry):
    files = sample_files("ed25519")
    submission = await registry.submitter.submit(files=files)
    artifact = await verdict(registry.client, submission.artifact_id)
    bundle = (await registry.client.get(f"/v1/artifacts/{submission.artifact_id}/bundle")).json()
    keys = {k["key_id"]: k for k in (await registry.client.get("/v1/keys")).json()}
    key = keys[artifact["key_id"]]
    assert key["algorithm"] == "ed25519"

    envelope = bundle["dsseEnvelope"]
    payload = base64.b64decode(envelope["payload"])
    payload_type = envelope["payloadType"].encode()
    # DSSE pre-authentication encoding, written out by hand: the signature covers exactly this.
    pae = b"DSSEv1 %d %s %d %s" % (len(payload_type), payload_type, len(payload), payload)
    public_key = load_pem_public_key(key["pem"].encode())
    public_key.verify(base64.b64decode(envelope["signatures"][0]["sig"]), pae)

    assert hashlib.sha256(payload).hexdigest() == artifact["digest"]
    statement = json.loads(payload)
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    resources = {r["name"]: r["digest"] for r in statement["predicate"]["resources"]}
    for path in files:
        download = await registry.client.get(f"/v1/artifacts/{submission.artifact_id}/files/{path}")
        assert resources[path] == hashlib.sha256(download.content).hexdigest()
    assert statement["predicate"]["kind"] == "base_model"

    tampered = bytearray(pae)
    tampered[-2] ^= 1
    with pytest.raises(InvalidSignature):
        public_key.verify(base64.b64decode(envelope["signatures"][0]["sig"]), bytes(tampered))


async def test_one_flipped_byte_is_rejected(registry):
    submission = await registry.submitter.submit(tamper="model.safetensors")

    problem = await verdict(registry.client, submission.artifact_id)

    assert problem["submission_status"] == "rejected"
    assert "model.safetensors" in problem["reason"]
    assert "sha256" in problem["reason"]


async def test_files_outside_the_store_and_unknown_parents_are_rejected(registry):
    outside = await registry.submitter.submit(parents={"art-does-not-exist": LineageRelation.TRAINED_FROM})
    problem = await verdict(registry.client, outside.artifact_id)
    assert "not a registered artifact" in problem["reason"]


async def _dataset(registry, name: str = "qa") -> str:
    dataset_id = f"ds-{name}-{datetime.now(UTC).timestamp():.0f}"
    await registry.submitter.bus.publish(
        DatasetVersionCreated(
            dataset_id=dataset_id,
            name=name,
            version=0,
            schema_kind=DatasetSchema.SFT,
            uri="file:///datasets/qa",
            num_rows=10,
            size_bytes=1234,
            created_by="alice",
        )
    )
    await verdict(registry.client, dataset_id)
    return dataset_id


async def _train(registry, base: str, dataset: str, *, eval_loss: float, submitter: str = "alice") -> str:
    """A job's whole story on the bus, and the adapter it produced submitted; returns the adapter's id."""
    job_id = f"job-{datetime.now(UTC).timestamp():.6f}"
    bus = registry.submitter.bus
    await bus.publish(
        StartTraining(
            job_id=job_id,
            submitted_by=submitter,
            base_model=base,
            dataset="qa",
            dataset_version=0,
            hyperparameters=Hyperparameters(max_steps=2),
        )
    )
    await bus.publish(TrainingStarted(job_id=job_id, worker="w1", total_steps=2))
    await bus.publish(
        TrainingProgressed(
            job_id=job_id, step=1, total_steps=2, loss=2.5, learning_rate=1e-4, tokens_per_second=10, eta_seconds=1
        )
    )
    adapter = await registry.submitter.submit(
        ArtifactKind.ADAPTER,
        "qa-adapter",
        parents={base: LineageRelation.TRAINED_FROM, dataset: LineageRelation.FINE_TUNED_ON},
        metrics={"eval_loss": eval_loss},
        job_id=job_id,
    )
    await bus.publish(
        TrainingCompleted(
            job_id=job_id,
            adapter_artifact_id=adapter.artifact_id,
            steps=2,
            duration_seconds=1.0,
            metrics={"eval_loss": eval_loss},
        )
    )
    await verdict(registry.client, adapter.artifact_id)
    return adapter.artifact_id


async def _evaluate(registry, artifact_id: str, suite: str, exact_match: float) -> str:
    """An eval report of the adapter, as the evaluator submits one; returns its id once registered."""
    report = await registry.submitter.submit(
        ArtifactKind.EVAL_REPORT,
        f"report-{suite}",
        parents={artifact_id: LineageRelation.EVALUATION_OF},
        metrics={"exact_match": exact_match, "items": 10.0},
        metadata={"suite": suite, "model": "some-base", "adapter": artifact_id},
    )
    await verdict(registry.client, report.artifact_id)
    return report.artifact_id


async def _job_completed(registry, job_id: str) -> dict:
    async with asyncio.timeout(WAIT_S):
        while True:
            response = await registry.client.get(f"/v1/jobs/{job_id}")
            if response.status_code == 200 and response.json()["status"] == "completed":
                return response.json()
            await asyncio.sleep(0.1)


async def test_lineage_jobs_and_openlineage(registry):
    base = (await registry.submitter.submit(name="lineage-base")).artifact_id
    await verdict(registry.client, base)
    dataset = await _dataset(registry)
    adapter_id = await _train(registry, base, dataset, eval_loss=1.2)
    adapter = (await registry.client.get(f"/v1/artifacts/{adapter_id}")).json()

    job = await _job_completed(registry, adapter["job_id"])
    assert job["submitted_by"] == "alice"
    assert job["adapter_artifact_id"] == adapter_id
    events = (await registry.client.get(f"/v1/jobs/{adapter['job_id']}/events")).json()
    # The command travels on another topic than the events, so only each topic's own order is guaranteed.
    assert sorted(e["type"].split(".")[2] for e in events) == ["completed", "progressed", "start", "started"]
    assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)

    lineage = (await registry.client.get(f"/v1/artifacts/{adapter_id}/lineage")).json()
    assert {(e["parent_id"], e["relation"]) for e in lineage["ancestors"]} == {
        (base, "trained_from"),
        (dataset, "fine_tuned_on"),
    }
    below = (await registry.client.get(f"/v1/artifacts/{base}/lineage")).json()
    assert {e["child_id"] for e in below["descendants"]} == {adapter_id}

    runs = (await registry.client.get(f"/v1/artifacts/{adapter_id}/lineage?format=openlineage")).json()
    run = next(r for r in runs if r["outputs"] == [{"namespace": "modelops", "name": adapter_id}])
    assert run["eventType"] == "COMPLETE"
    assert {i["name"] for i in run["inputs"]} == {base, dataset}
    assert run["job"]["name"] == adapter["job_id"]

    bundle = (await registry.client.get(f"/v1/artifacts/{adapter_id}/bundle")).json()
    predicate = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))["predicate"]
    base_digest = (await registry.client.get(f"/v1/artifacts/{base}")).json()["digest"]
    assert predicate["base_model_digest"] == base_digest
    assert predicate["job_id"] == adapter["job_id"]
    assert predicate["metrics"] == {"eval_loss": 1.2}


async def _promote(registry, artifact_id: str, stage: str, actor: str, role: str = "approver"):
    return await registry.client.post(
        f"/v1/artifacts/{artifact_id}/promotions",
        json={"to_stage": stage, "reason": f"{actor} says so"},
        headers=acting_as(actor, role),
    )


async def test_governance_policy_history_and_time_travel(registry):
    base = (await registry.submitter.submit(name="gov-base")).artifact_id
    await verdict(registry.client, base)
    dataset = await _dataset(registry, "gov")
    good = await _train(registry, base, dataset, eval_loss=1.5)
    poor = await _train(registry, base, dataset, eval_loss=3.0)

    refused = await _promote(registry, poor, "staging", "bob")
    assert refused.status_code == 409
    assert "eval_loss" in refused.json()["detail"]
    assert (await _promote(registry, good, "staging", "carol", role="developer")).status_code == 409
    assert (await _promote(registry, good, "prod", "bob")).status_code == 409  # dev → prod skips staging

    before_staging = datetime.now(UTC)
    staged = await _promote(registry, good, "staging", "bob")
    assert staged.status_code == 201, staged.text
    assert staged.json()["signature"]
    unevaluated = await _promote(registry, good, "prod", "bob")
    assert unevaluated.status_code == 409
    assert "needs a signed eval report" in unevaluated.json()["detail"]
    await _evaluate(registry, good, "gov-held-out", exact_match=0.9)
    own = await _promote(registry, good, "prod", "alice")  # alice submitted the job
    assert own.status_code == 409
    assert "other than the submitter" in own.json()["detail"]
    in_prod_since = datetime.now(UTC)
    assert (await _promote(registry, good, "prod", "bob")).status_code == 201

    # The next adapter of that base may not lose more than 0.02 of exact match on that suite against it.
    challenger = await _train(registry, base, dataset, eval_loss=1.4)
    assert (await _promote(registry, challenger, "staging", "bob")).status_code == 201
    await _evaluate(registry, challenger, "gov-held-out", exact_match=0.8)
    regressed = await _promote(registry, challenger, "prod", "bob")
    assert regressed.status_code == 409
    assert "exact_match to worsen by at most 0.02" in regressed.json()["detail"]
    await _evaluate(registry, challenger, "gov-held-out", exact_match=0.89)
    assert (await _promote(registry, challenger, "prod", "bob")).status_code == 201

    history = (await registry.client.get(f"/v1/artifacts/{good}/promotions")).json()
    assert [(p["from_stage"], p["to_stage"], p["actor"]) for p in history] == [
        ("dev", "staging", "bob"),
        ("staging", "prod", "bob"),
    ]
    stage_then = await registry.client.get(f"/v1/artifacts/{good}/stage", params={"at": before_staging.isoformat()})
    assert stage_then.json()["stage"] == "dev"
    now = datetime.now(UTC) + timedelta(seconds=1)
    assert (await registry.client.get(f"/v1/artifacts/{good}/stage", params={"at": now.isoformat()})).json()[
        "stage"
    ] == "prod"
    in_prod = await registry.client.get("/v1/stages/prod/artifacts", params={"at": now.isoformat()})
    assert good in {a["id"] for a in in_prod.json()}
    earlier = await registry.client.get("/v1/stages/prod/artifacts", params={"at": in_prod_since.isoformat()})
    assert good not in {a["id"] for a in earlier.json()}

    assert (await _promote(registry, good, "revoked", "bob")).status_code == 409  # approvers may not revoke
    assert (await _promote(registry, good, "revoked", "root", role="admin")).status_code == 201
    again = await _promote(registry, good, "staging", "root", role="admin")
    assert again.status_code == 409
    assert "revoked" in again.json()["detail"]


async def test_live_digest_equals_a_replay_and_the_log_verifies(registry):
    from modelops_registry.app import verify_log
    from modelops_registry.replay import replay

    await verdict(registry.client, (await registry.submitter.submit()).artifact_id)
    live = (await registry.client.get("/v1/state-digest")).json()
    assert await verify_log(registry.settings) == 0
    import contextlib
    import io

    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        assert await replay(registry.settings) == 0
    assert f"state digest: {live['state_digest']}" in output.getvalue()


async def test_internal_calls_prove_who_calls_and_only_the_gateway_names_who_acts(registry):
    """No token: 401 on every route but the probes and the state digest. A promotion needs the acting user from
    the gateway's token; a body that names one, or another service's token, gets nothing."""
    base = (await registry.submitter.submit(name="auth-base")).artifact_id
    await verdict(registry.client, base)
    anonymous = httpx.AsyncClient(transport=httpx.ASGITransport(app=registry.app), base_url="http://registry")
    async with anonymous:
        for path in ("/v1/artifacts", f"/v1/artifacts/{base}", "/v1/keys", "/v1/deployments", "/openapi.json"):
            response = await anonymous.get(path)
            assert response.status_code == 401, path
            assert response.json()["type"].endswith("/service-token-required")
        assert (await anonymous.post(f"/v1/artifacts/{base}/promotions", json={})).status_code == 401
        for path in ("/healthz", "/readyz", "/metrics", "/v1/state-digest"):
            assert (await anonymous.get(path)).status_code == 200, path

    body = {"to_stage": "staging", "reason": "looks good", "actor": "mallory", "actor_role": "admin"}
    path = f"/v1/artifacts/{base}/promotions"
    as_gateway_itself = await registry.client.post(path, json=body)
    assert as_gateway_itself.status_code == 403  # the gateway's own token names no user: the body is not read
    as_trainer = await registry.client.post(path, json=body, headers={"Authorization": "Bearer " + trainer_token()})
    assert as_trainer.status_code == 403
    forged = acting_as("mallory", "admin")
    forged["Authorization"] = forged["Authorization"][:-4] + "AAAA"  # the signature no longer matches
    assert (await registry.client.post(path, json=body, headers=forged)).status_code == 401
    assert (await registry.client.get(path)).json() == []  # nothing was promoted
    promoted = await registry.client.post(path, json=body, headers=acting_as("bob", "approver"))
    assert promoted.status_code == 201, promoted.text
    assert promoted.json()["actor"] == "bob"
    policy = (await registry.client.get("/v1/policy")).json()
    assert policy["deploy"] == {"stages": ["prod", "staging"], "fine_tuning_jobs": True}
    assert policy["stages"]["prod"]["distinct_approver"] is True
    assert policy["stages"]["prod"]["evaluations"] == [
        {
            "suite": "*",
            "kinds": ["adapter", "merged_model", "quantized_model"],
            "metrics": {},
            "max_regression": {"exact_match": 0.02},
        }
    ]


def trainer_token() -> str:
    return identity("trainer").token("registry", subject="mallory", role="admin")  # a worker claiming a user


async def test_a_promotion_request_made_again_returns_the_promotion_it_made(registry):
    """The gateway names a promotion request (from its Idempotency-Key): asked again after a lost answer, the
    registry returns that promotion instead of attempting the move a second time (which the policy would refuse)."""
    base = (await registry.submitter.submit(name="retried-base")).artifact_id
    await verdict(registry.client, base)
    path = f"/v1/artifacts/{base}/promotions"
    body = {"to_stage": "staging", "reason": "looks good", "request_id": "req-1"}
    first = await registry.client.post(path, json=body, headers=acting_as("bob", "approver"))
    again = await registry.client.post(path, json=body, headers=acting_as("bob", "approver"))
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert first.json()["request_id"] == "req-1"
    another = await registry.client.post(
        path, json={**body, "request_id": "req-2"}, headers=acting_as("bob", "approver")
    )
    assert another.status_code == 409  # a new request for the same move: staging to staging does not exist
    reused = await registry.client.post(path, json={**body, "to_stage": "prod"}, headers=acting_as("carol", "approver"))
    assert reused.status_code == 409  # one request id, another move: refused, not mistaken for the first
    assert "already moved" in reused.json()["detail"]
    history = (await registry.client.get(path)).json()
    assert [(p["from_stage"], p["to_stage"]) for p in history] == [("dev", "staging")]
