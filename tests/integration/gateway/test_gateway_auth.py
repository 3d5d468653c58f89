"""Authentication, roles, API keys and rate limits at the gateway, on the real stack."""

from __future__ import annotations

import json

import pytest
import websockets
from fastapi.routing import iter_route_contexts
from starlette.convertors import FloatConvertor, IntegerConvertor, UUIDConvertor
from starlette.routing import Match, Route, WebSocketRoute
from websockets.asyncio.client import connect

from .support import PROBLEM_JSON

ROLES = ("viewer", "developer", "approver", "admin")
# The routes anyone may call: the operational ones every service has (create_service_app) and FastAPI's OpenAPI
# document and its two viewers. Every other route of the app must refuse a request without a key.
PUBLIC = {"/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
CONSOLE = "/ui"  # the console's static files: the page holds no data, every figure it shows needs the key
DUMMIES = {IntegerConvertor: "1", FloatConvertor: "1.5", UUIDConvertor: "00000000-0000-0000-0000-000000000001"}
# One route per role level, with a request that passes validation, so only the role decides between 403 and not.
ROUTES = {
    "viewer": ("GET", "/v1/keys", {}),
    "developer": ("POST", "/v1/artifacts", {"content": b"", "headers": {"Content-Type": "text/plain"}}),
    "approver": ("POST", "/v1/artifacts/art-none/promotions", {"json": {"to_stage": "staging", "reason": "tested"}}),
    "admin": ("GET", "/v1/api-keys", {}),
}


def assert_problem(response, status: int, slug: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert body["type"].endswith(f"/{slug}"), body
    assert body["status"] == status
    return body


def _routes(app) -> list:
    """Every route the app serves, those of included routers too, as FastAPI's own OpenAPI generation walks them."""
    return list(iter_route_contexts(app.routes))


def _dummy_path(route) -> str:
    """The route's path with every parameter filled with a value its convertor accepts."""
    values = {name: DUMMIES.get(type(convertor), "dummy") for name, convertor in route.param_convertors.items()}
    return str(route.path_format.format(**values))


def _first_match(app, scope: dict) -> object:
    """The endpoint the app routes `scope` to (the first route that matches it fully, as Starlette picks)."""
    for route in _routes(app):
        match, child = route.matches(scope)
        if match == Match.FULL:
            return child["endpoint"]
    raise AssertionError(f"no route matches {scope}")


async def test_without_a_key_every_route_answers_401_with_a_bearer_challenge(gateway):
    """Every route of the app (new ones included, as they come), every method, WebSockets too, save the public ones."""
    routes = _routes(gateway.app)
    assert {route.path for route in routes} >= PUBLIC, "a public route listed here is gone from the app"
    checked = []
    async with gateway.client() as anonymous:
        for route in routes:
            if route.path in PUBLIC or route.path == CONSOLE:
                continue
            path = _dummy_path(route)
            if isinstance(route.original_route, WebSocketRoute):
                assert _first_match(gateway.app, {"type": "websocket", "path": path}) is route.endpoint, path
                with pytest.raises(websockets.InvalidStatus) as refused:
                    async with connect(gateway.url.replace("http://", "ws://") + path):
                        pass
                response = refused.value.response
                assert response.status_code == 401, (path, response.body)
                assert json.loads(response.body)["type"].endswith("/unauthorized"), (path, response.body)
                checked.append(("WEBSOCKET", path))
                continue
            assert isinstance(route.original_route, Route), f"{route.path}: a kind of route this test cannot call"
            for method in sorted(route.methods):
                assert _first_match(gateway.app, {"type": "http", "path": path, "method": method}) is route.endpoint
                response = await anonymous.request(method, path)
                if method != "HEAD":
                    assert_problem(response, 401, "unauthorized")
                assert response.status_code == 401, (method, path)
                assert response.headers["WWW-Authenticate"] == 'Bearer realm="modelops"', (method, path)
                checked.append((method, path))
    assert ("WEBSOCKET", "/v1/jobs/dummy/ws") in checked  # the walk reached routes of included routers
    assert len(checked) > len(ROUTES)


async def test_an_unknown_or_malformed_key_is_401_invalid_token(gateway):
    for headers in ({"Authorization": "Bearer mok_not-a-key"}, {"Authorization": "Basic YWRtaW46YWRtaW4="}):
        async with gateway.client() as client:
            response = await client.get("/v1/keys", headers=headers)
        assert response.status_code == 401
    async with gateway.client("mok_not-a-key") as client:
        response = await client.get("/v1/keys")
    assert_problem(response, 401, "unauthorized")
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


async def test_operational_routes_and_the_openapi_document_are_public(gateway):
    async with gateway.client() as anonymous:
        for path in sorted(PUBLIC):
            assert (await anonymous.get(path)).status_code == 200, path
        page = await anonymous.get(f"{CONSOLE}/")
        assert (page.status_code, page.headers["content-type"]) == (200, "text/html; charset=utf-8")
        ready = await anonymous.get("/readyz")
        assert ready.status_code == 200, ready.text
        expected = {
            "broker": "ok",
            "consumers": "ok",
            "database": "ok",
            "store": "ok",
            "redis": "ok",
            "console-recorder": "ok",
        }
        assert ready.json()["checks"] == expected
        assert (await anonymous.get("/metrics")).status_code == 200
        document = (await anonymous.get("/openapi.json")).json()
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert all(path.startswith("/v1/") for path in document["paths"] if path not in ("/healthz", "/readyz", "/metrics"))


@pytest.mark.parametrize("role", ROLES)
async def test_each_role_reaches_its_level_and_below_and_gets_403_above(gateway, role):
    key = await gateway.keys.make(role)
    async with gateway.client(key.secret) as client:
        for required, (method, path, kwargs) in ROUTES.items():
            response = await client.request(method, path, **kwargs)
            if ROLES.index(role) >= ROLES.index(required):
                assert response.status_code not in (401, 403), (role, path, response.text)
            else:
                body = assert_problem(response, 403, "insufficient-role")
                assert body["required_role"] == required


async def test_api_keys_are_created_once_listed_without_secrets_and_revoked_at_once(gateway):
    developer = await gateway.keys.make("developer", rate_limit="50/minute")
    assert developer.secret.startswith("mok_")
    async with gateway.client(gateway.admin_key) as admin, gateway.client(developer.secret) as client:
        listed = await admin.get("/v1/api-keys")
        assert listed.status_code == 200
        assert developer.secret not in listed.text
        assert gateway.admin_key not in listed.text
        mine = next(key for key in listed.json() if key["id"] == developer.id)
        assert "key" not in mine
        assert (mine["role"], mine["rate_limit"], mine["revoked_at"]) == ("developer", "50/minute", None)

        assert (await client.get("/v1/keys")).status_code == 200
        duplicate = await admin.post("/v1/api-keys", json={"name": developer.name, "role": "viewer"})
        assert_problem(duplicate, 409, "api-key-name-taken")

        revoked = await admin.delete(f"/v1/api-keys/{developer.id}")
        assert revoked.status_code == 200
        assert revoked.json()["revoked_at"] is not None
        assert_problem(await client.get("/v1/keys"), 401, "unauthorized")
        assert_problem(await admin.delete("/v1/api-keys/key_missing"), 404, "api-key-not-found")


async def test_key_requests_are_validated(gateway):
    async with gateway.client(gateway.admin_key) as admin:
        for body in (
            {"name": "x", "role": "emperor"},
            {"name": "", "role": "viewer"},
            {"name": "x", "role": "viewer", "rate_limit": "lots"},
            {"name": "x", "role": "viewer", "rate_limit": "0/minute"},
        ):
            assert_problem(await admin.post("/v1/api-keys", json=body), 422, "validation-error")


async def test_the_last_admin_key_cannot_be_revoked(gateway):
    async with gateway.client(gateway.admin_key) as admin:
        keys = (await admin.get("/v1/api-keys")).json()
        bootstrap = next(k for k in keys if k["name"] == "admin" and k["revoked_at"] is None)
        for other in keys:  # admin keys other tests made
            if other["role"] == "admin" and other["revoked_at"] is None and other["id"] != bootstrap["id"]:
                assert (await admin.delete(f"/v1/api-keys/{other['id']}")).status_code == 200
        assert_problem(await admin.delete(f"/v1/api-keys/{bootstrap['id']}"), 409, "last-admin-key")
        assert (await admin.get("/v1/api-keys")).status_code == 200


async def test_a_key_over_its_limit_gets_429_with_retry_after_and_ratelimit_headers(gateway):
    key = await gateway.keys.make("viewer", rate_limit="3/minute")
    async with gateway.client(key.secret) as client:
        for remaining in (2, 1, 0):
            response = await client.get("/v1/keys")
            assert response.status_code == 200
            assert response.headers["RateLimit-Limit"] == "3"
            assert response.headers["RateLimit-Remaining"] == str(remaining)
            assert 0 < int(response.headers["RateLimit-Reset"]) <= 60
        limited = await client.get("/v1/keys")
        forbidden_too = await client.get("/v1/api-keys")
    body = assert_problem(limited, 429, "rate-limited")
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert body["retry_after"] == int(limited.headers["Retry-After"])
    assert (limited.headers["RateLimit-Limit"], limited.headers["RateLimit-Remaining"]) == ("3", "0")
    assert forbidden_too.status_code == 429  # the limit holds before the role is even looked at


async def test_keys_without_their_own_limit_get_the_default(gateway):
    key = await gateway.keys.make("viewer")
    async with gateway.client(key.secret) as client:
        response = await client.get("/v1/keys")
    assert response.headers["RateLimit-Limit"] == "120"
    assert response.headers["RateLimit-Remaining"] == "119"


async def test_unknown_routes_and_methods_are_problems(gateway):
    async with gateway.client(gateway.admin_key) as admin:
        assert_problem(await admin.get("/v1/nothing-here"), 404, "not-found")
        not_allowed = await admin.put("/v1/api-keys")
        assert_problem(not_allowed, 405, "method-not-allowed")
        assert "Allow" in not_allowed.headers
