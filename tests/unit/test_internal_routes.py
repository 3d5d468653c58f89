"""Every route of every internal service (all but the gateway, which authenticates users by API key) answers 401
to a caller without a service token, whatever the method and path; only the probes, the metrics and the registry's
state digest stay open. The routes are read from the apps themselves, so a new route is covered as it is added."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from modelops_shared.devstack.services import discover

REPO = Path(__file__).resolve().parents[2]
INTERNAL = [service for service in discover(REPO / "services") if service != "gateway"]
OPEN = {"/healthz", "/readyz", "/metrics", "/v1/state-digest"}


def _app(service: str) -> FastAPI:
    """The service's app as its entry point builds it, lifespan not entered: the token check comes first anyway."""
    module = importlib.import_module(f"modelops_{service}.app")
    settings = next(
        value
        for name, value in vars(importlib.import_module(f"modelops_{service}.settings")).items()
        if name.endswith("Settings") and value.__module__ == f"modelops_{service}.settings"
    )
    app: FastAPI = module.create_app(settings())
    return app


def _calls(app: FastAPI) -> list[tuple[str, str]]:
    """(method, concrete path) for every operation of the app's OpenAPI document, path parameters filled with a
    placeholder; and the documentation routes themselves."""
    operations = [
        (method.upper(), re.sub(r"\{[^}]+\}", "x", path))
        for path, item in app.openapi()["paths"].items()
        for method in item
    ]
    return [*operations, ("GET", "/openapi.json"), ("GET", "/docs")]


@pytest.mark.parametrize("service", INTERNAL)
async def test_every_route_but_the_open_ones_answers_401_without_a_token(service: str) -> None:
    app = _app(service)
    calls = _calls(app)
    closed = [(method, path) for method, path in calls if path not in OPEN]
    assert len(closed) >= 1, f"{service} has no internal route"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{service}") as client:
        for method, path in closed:
            response = await client.request(method, path, json={})
            assert response.status_code == 401, (service, method, path, response.status_code)
            assert response.json()["type"].endswith("/service-token-required")
            bogus = await client.request(method, path, json={}, headers={"Authorization": "Bearer e30.e30.AAAA"})
            assert bogus.status_code == 401, (service, method, path)
        for path in ("/healthz", "/metrics"):
            assert (await client.get(path)).status_code == 200
