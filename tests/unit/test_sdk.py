"""The SDK without a gateway: its generated models match the gateway's OpenAPI document and its blocking client the
asyncio one, bundles signed with Ed25519 and ECDSA P-256 verify locally (and tampering does not), the SSE parser and
resumption skip nothing twice, and an unreachable gateway ends in ConnectionFailed after the retry policy's attempts,
in both HTTP twins."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import inspect
import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from modelops_sdk import AsyncClient, Client
from modelops_sdk._async.http import AsyncHttp
from modelops_sdk._sync.http import SyncHttp
from modelops_sdk.errors import ApiError, ConnectionFailed, VerificationFailed
from modelops_sdk.events import Resumption, SseParser
from modelops_sdk.http import DEFAULT_TIMEOUT
from modelops_sdk.retrying import RetryPolicy
from modelops_sdk.verify import PAYLOAD_TYPE, check_files, pae, verify_bundle

ROOT = Path(__file__).resolve().parents[2]
NO_WAIT = RetryPolicy(attempts=2, backoff_s=0)


def test_the_committed_sdk_models_are_generated_from_the_current_gateway():
    checked = subprocess.run([sys.executable, ROOT / "sdk" / "codegen.py", "--check"], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr + " (run `make sdk-models`)"


def _codegen():
    spec = importlib.util.spec_from_file_location("codegen", ROOT / "sdk" / "codegen.py")
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _methods(resource: object) -> dict[str, object]:
    return {name: method for name, method in inspect.getmembers(resource, inspect.ismethod) if name[0] != "_"}


def test_the_blocking_client_is_the_asyncio_one_generated():
    codegen = _codegen()
    generated = codegen.sync_client()
    assert codegen.stale(generated) == [], "run `make sdk-models`"
    client = codegen.SYNC / "client.py"
    edited = generated | {client: generated[client] + "# edited by hand\n"}
    assert codegen.stale(edited) == ["modelops_sdk/_sync/client.py"]

    blocking, asyncio_ = Client("http://gw"), AsyncClient("http://gw")
    for area in ("api_keys", "datasets", "artifacts", "jobs"):
        methods, awaited = _methods(getattr(blocking, area)), _methods(getattr(asyncio_, area))
        assert methods.keys() == awaited.keys()
        for name, method in methods.items():
            assert not inspect.iscoroutinefunction(method), f"{area}.{name}"
            assert not inspect.isasyncgenfunction(method), f"{area}.{name}"
            assert inspect.signature(method).parameters == inspect.signature(awaited[name]).parameters
    blocking.close()


def _bundle(files: dict[str, bytes], sign) -> dict:
    resources = [{"name": n, "algorithm": "sha256", "digest": hashlib.sha256(d).hexdigest()} for n, d in files.items()]
    root = hashlib.sha256(b"".join(bytes.fromhex(r["digest"]) for r in resources)).hexdigest()
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "a", "digest": {"sha256": root}}],
        "predicateType": "https://model_signing/signature/v1.0",
        "predicate": {"resources": resources},
    }
    payload = json.dumps(statement).encode()
    signature = sign(pae(PAYLOAD_TYPE, payload))
    envelope = {"payloadType": PAYLOAD_TYPE, "payload": base64.b64encode(payload).decode()}
    return {"dsseEnvelope": envelope | {"signatures": [{"sig": base64.b64encode(signature).decode()}]}}


def _pem(key) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.mark.parametrize("algorithm", ["ed25519", "ecdsa-p256"])
def test_bundles_verify_locally_and_tampering_is_found(algorithm, tmp_path):
    if algorithm == "ed25519":
        key = ed25519.Ed25519PrivateKey.generate()
        sign = key.sign
    else:
        key = ec.generate_private_key(ec.SECP256R1())
        sign = lambda message: key.sign(message, ec.ECDSA(hashes.SHA256()))  # noqa: E731
    files = {"config.json": b"{}", "weights/model.bin": b"\x00" * 100}
    bundle = _bundle(files, sign)
    for name, data in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)

    statement = verify_bundle(bundle, [_pem(ed25519.Ed25519PrivateKey.generate()), _pem(key)])
    assert check_files(statement, tmp_path) == []
    (tmp_path / "config.json").write_bytes(b"{ }")
    (tmp_path / "extra.txt").write_bytes(b"")
    assert check_files(statement, tmp_path) == ["unlisted: extra.txt", "digest mismatch: config.json"]

    with pytest.raises(VerificationFailed, match="no signature"):
        verify_bundle(bundle, [_pem(ed25519.Ed25519PrivateKey.generate())])
    forged = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    forged["predicate"]["resources"][0]["digest"] = "00" * 32
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(forged).encode()).decode()
    with pytest.raises(VerificationFailed):
        verify_bundle(bundle, [_pem(key)])


def test_sse_events_are_parsed_and_a_replayed_one_is_dropped():
    event = {"id": 3, "job_id": "j", "type": "progressed", "at": "2026-01-01T00:00:00Z", "data": {"step": 1}}
    parser = SseParser()
    lines = [": ping", "id: 3", "event: progressed", f"data: {json.dumps(event)}", ""]
    parsed = [parser.feed(line) for line in lines]
    assert [p.id if p else None for p in parsed] == [None, None, None, None, 3]
    where = Resumption(last_event_id=2, reconnects=1, backoff_s=0)
    assert [e.id for e in where.seen(parsed)] == [3]
    assert list(where.seen(parsed)) == []  # the same event again after a reconnection
    assert where.last_event_id == 3


def test_a_stream_is_resumed_after_drops_and_early_ends_but_not_after_a_refusal():
    where = Resumption(last_event_id=None, reconnects=2, backoff_s=1)
    assert where.dropped(ConnectionError("reset")) == 1
    assert where.dropped(ApiError(503, "Service Unavailable")) == 2  # the gateway still starting
    assert where.ended() == 2  # an early end waits as long, and does not count as a failure
    with pytest.raises(ConnectionFailed, match="after 2 reconnections"):
        where.dropped(ConnectionError("reset"))
    where = Resumption(last_event_id=None, reconnects=2, backoff_s=1)
    assert where.ended() == 1
    with pytest.raises(ApiError, match="404"):
        where.dropped(ApiError(404, "Not Found"))


def _unreachable(calls: list[str]) -> httpx.MockTransport:
    def refuse(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        raise httpx.ConnectError("refused", request=request)

    return httpx.MockTransport(refuse)


def test_an_unreachable_gateway_is_connection_failed_after_the_policys_attempts(tmp_path):
    calls: list[str] = []
    http = SyncHttp("http://gw", None, timeout=DEFAULT_TIMEOUT, retry=NO_WAIT, transport=_unreachable(calls))
    with pytest.raises(ConnectionFailed, match="GET /a"):
        http.request("GET", "/a")
    with pytest.raises(ConnectionFailed, match="GET /b"), http.stream("GET", "/b"):
        pass
    with pytest.raises(ConnectionFailed, match="GET /c"):
        http.download("/c", tmp_path / "c")
    assert calls == ["/a"] * 2 + ["/b"] * 2 + ["/c"] * 2  # a download's opening is not retried twice over
    assert not (tmp_path / "c").exists()


async def test_the_asyncio_twin_fails_the_same_way(tmp_path):
    calls: list[str] = []
    http = AsyncHttp("http://gw", None, timeout=DEFAULT_TIMEOUT, retry=NO_WAIT, transport=_unreachable(calls))
    with pytest.raises(ConnectionFailed, match="GET /a"):
        await http.request("GET", "/a")
    with pytest.raises(ConnectionFailed, match="GET /b"):
        async with http.stream("GET", "/b"):
            pass
    with pytest.raises(ConnectionFailed, match="GET /c"):
        await http.download("/c", tmp_path / "c")
    await http.aclose()
    assert calls == ["/a"] * 2 + ["/b"] * 2 + ["/c"] * 2


def test_every_error_says_what_to_do_and_a_problems_own_hint_wins():
    not_found = ApiError.of(httpx.Response(404, json={"title": "Not Found", "detail": "no registered dataset 'x'"}))
    assert "registry" in not_found.hint
    assert "logs" in ApiError(502, "Bad Gateway").hint
    assert "API key" in ApiError(401, "Unauthorized").hint
    own = ApiError.of(httpx.Response(409, json={"title": "Conflict", "hint": "cancel the running job first"}))
    assert own.hint == "cancel the running job first"
    assert "make up" in ConnectionFailed("GET /a: refused").hint


def test_a_retry_that_finds_its_first_attempt_still_running_is_retried_but_other_conflicts_are_not():
    policy = RetryPolicy()
    in_use = ApiError(409, "Conflict", type="https://modelops.dev/problems/idempotency-key-in-use", retry_after=2)
    conflict = ApiError(409, "Conflict", type="https://modelops.dev/problems/policy-violation")
    assert policy.retryable(in_use)
    assert not policy.retryable(conflict)
