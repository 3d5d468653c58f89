"""Every service's OpenAPI document says what its handlers answer: each error response is problem+json (FastAPI's
own 422 included), and no optional parameter is documented as a null a query string cannot carry."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from modelops_gateway.app import create_app as create_gateway
from modelops_gateway.settings import GatewaySettings
from modelops_registry.app import create_app as create_registry
from modelops_registry.settings import RegistrySettings
from modelops_shared.problems import PROBLEM_JSON


def _operations(app: FastAPI) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation) for path, item in app.openapi()["paths"].items() for method, operation in item.items()
    ]


@pytest.mark.parametrize(
    "app", [create_gateway(GatewaySettings()), create_registry(RegistrySettings())], ids=["gateway", "registry"]
)
def test_every_error_response_is_documented_as_problem_json(app: FastAPI) -> None:
    errors = [
        (path, method, status, set(response.get("content", {})))
        for path, method, operation in _operations(app)
        for status, response in operation["responses"].items()
        if status[0] in "45"
    ]
    assert errors
    assert [error for error in errors if error[3] != {PROBLEM_JSON}] == []
    assert "HTTPValidationError" not in app.openapi()["components"]["schemas"]


def test_a_list_filter_refused_as_422_is_documented_so() -> None:
    # `GET /v1/jobs?status=false` answers a 422 problem: the document must say so.
    operation = create_gateway(GatewaySettings()).openapi()["paths"]["/v1/jobs"]["get"]
    assert set(operation["responses"]["422"]["content"]) == {PROBLEM_JSON}
    status = next(parameter for parameter in operation["parameters"] if parameter["name"] == "status")
    assert {"type": "null"} not in status["schema"].get("anyOf", [])


def test_an_operation_with_a_body_documents_the_400_of_a_body_that_does_not_parse() -> None:
    operation = create_gateway(GatewaySettings()).openapi()["paths"]["/v1/deployments"]["post"]
    assert set(operation["responses"]["400"]["content"]) == {PROBLEM_JSON}
