"""Service tokens: an internal service answers 401 to any caller that does not prove it is a trusted service, lets
the probes through, and learns the acting user only from a verified token."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from fastapi.testclient import TestClient
from modelops_shared.service import ServiceCallerDep, create_service_app
from modelops_shared.service_tokens import (
    BEARER,
    REREAD_S,
    ServiceIdentity,
    ServiceTokenError,
    TrustedServices,
    keygen,
)
from modelops_shared.settings import Settings
from starlette.status import WS_1008_POLICY_VIOLATION


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    keygen(tmp_path, ["registry", "gateway", "inference"])
    return tmp_path


def _identity(keys: Path, service: str) -> ServiceIdentity:
    return ServiceIdentity.from_settings(Settings(service_name=service, service_keys_dir=keys))


def _registry_app(keys: Path) -> FastAPI:
    app = create_service_app(
        Settings(service_name="registry", service_keys_dir=keys), title="test", open_paths=("/v1/state-digest",)
    )

    @app.get("/v1/whoami")
    async def whoami(caller: ServiceCallerDep) -> dict[str, str | None]:
        return {"service": caller.service, "subject": caller.subject, "role": caller.role}

    @app.get("/v1/state-digest")
    async def digest() -> dict[str, str]:
        return {"state_digest": "x"}

    return app


async def _get(keys: Path, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    transport = httpx.ASGITransport(app=_registry_app(keys))
    async with httpx.AsyncClient(transport=transport, base_url="http://registry") as client:
        return await client.get(path, headers=headers)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": BEARER + token}


async def test_an_internal_route_answers_401_without_a_token_and_probes_stay_open(keys: Path) -> None:
    response = await _get(keys, "/v1/whoami")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith("/service-token-required")
    assert response.headers["www-authenticate"].startswith("Bearer")
    for path in ("/healthz", "/metrics", "/v1/state-digest"):
        assert (await _get(keys, path)).status_code == 200, path


def test_an_internal_websocket_handshake_without_a_token_is_refused(keys: Path) -> None:
    app = _registry_app(keys)

    @app.websocket("/v1/stream")
    async def stream(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("open")
        await websocket.close()

    with TestClient(app) as client:
        with pytest.raises(WebSocketDisconnect) as refused, client.websocket_connect("/v1/stream"):
            pass
        assert refused.value.code == WS_1008_POLICY_VIOLATION
        token = _identity(keys, "gateway").token("registry")
        with client.websocket_connect("/v1/stream", headers=_bearer(token)) as websocket:
            assert websocket.receive_text() == "open"


async def test_a_trusted_service_token_names_the_service_and_the_acting_user(keys: Path) -> None:
    gateway = _identity(keys, "gateway")
    plain = await _get(keys, "/v1/whoami", _bearer(gateway.token("registry")))
    assert plain.json() == {"service": "gateway", "subject": "gateway", "role": None}
    acting = await _get(keys, "/v1/whoami", _bearer(gateway.token("registry", subject="alice", role="approver")))
    assert acting.json() == {"service": "gateway", "subject": "alice", "role": "approver"}


async def test_tokens_that_prove_nothing_are_refused(keys: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    gateway = _identity(keys, "gateway")
    stranger_keys = tmp_path_factory.mktemp("stranger")
    keygen(stranger_keys, ["gateway"])
    forged = _identity(stranger_keys, "gateway")  # a gateway key the registry never trusted
    now = int(time.time())
    key = serialization.load_pem_private_key((keys / "gateway.key.pem").read_bytes(), password=None)
    kid = jwt.get_unverified_header(gateway.token("registry"))["kid"]

    def signed(claims: dict[str, object]) -> str:
        return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": kid})  # type: ignore[arg-type]

    base = {"iss": "gateway", "aud": "registry", "sub": "gateway", "iat": now, "exp": now + 60}
    refused = {
        "not a bearer": {"Authorization": "Basic Zm9vOmJhcg=="},
        "garbage": _bearer("not.a.jwt"),
        "for another service": _bearer(gateway.token("inference")),
        "an untrusted key": _bearer(forged.token("registry")),
        "expired": _bearer(signed({**base, "iat": now - 120, "exp": now - 60})),
        "claims to be another service": _bearer(signed({**base, "iss": "inference"})),
        "lives for a day": _bearer(signed({**base, "exp": now + 86400})),
        "no subject": _bearer(signed({k: v for k, v in base.items() if k != "sub"})),
        "unsigned": _bearer(jwt.encode(base, None, algorithm="none")),  # type: ignore[arg-type]
    }
    for case, headers in refused.items():
        assert (await _get(keys, "/v1/whoami", headers)).status_code == 401, case


def test_a_peer_key_that_appears_later_is_trusted_without_a_restart(tmp_path: Path) -> None:
    keygen(tmp_path, ["registry"])
    trusted = TrustedServices("registry", tmp_path)
    with pytest.raises(ServiceTokenError):
        trusted.verify(None)
    keygen(tmp_path, ["trainer"])
    token = _identity(tmp_path, "trainer").token("registry")
    trusted._read_at = 0.0  # the re-read is rate limited to once a second
    assert trusted.verify(BEARER + token).service == "trainer"


def test_keygen_keeps_existing_keys_and_hides_private_ones(tmp_path: Path) -> None:
    assert keygen(tmp_path, ["gateway"]) == ["gateway"]
    first = (tmp_path / "gateway.key.pem").read_bytes()
    assert keygen(tmp_path, ["gateway"]) == []
    assert (tmp_path / "gateway.key.pem").read_bytes() == first
    assert (tmp_path / "gateway.key.pem").stat().st_mode & 0o077 == 0
    public = serialization.load_pem_public_key((tmp_path / "gateway.pub.pem").read_bytes())
    assert isinstance(public, ed25519.Ed25519PublicKey)
    assert "gateway" in repr(_identity(tmp_path, "gateway"))
    assert "PRIVATE" not in repr(_identity(tmp_path, "gateway"))


def test_a_service_without_its_key_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(ServiceTokenError, match="keygen"):
        _identity(tmp_path, "gateway")


def test_a_removed_peer_key_stops_being_trusted_and_a_broken_file_is_skipped(tmp_path: Path) -> None:
    keygen(tmp_path, ["registry", "trainer"])
    trusted = TrustedServices("registry", tmp_path)
    token = _identity(tmp_path, "trainer").token("registry")
    assert trusted.verify(BEARER + token).service == "trainer"
    (tmp_path / "trainer.pub.pem").unlink()  # the trainer's key leaked: the operator removes it
    (tmp_path / "broken.pub.pem").write_text("-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n")
    trusted._read_at -= REREAD_S + 1  # as once REREAD_S has passed
    with pytest.raises(ServiceTokenError, match="not a trusted service key"):
        trusted.verify(BEARER + token)
