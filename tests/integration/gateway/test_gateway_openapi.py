"""Schemathesis against the gateway's own OpenAPI document, served on a real port with the real registry behind it:
no generated request may get a 5xx, and no response may contradict the document. Bounded: a few examples per
operation, in a worker thread so that this event loop keeps serving the gateway meanwhile."""

from __future__ import annotations

import asyncio
import time

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode, checks

from .inference_support import fake_inference

EXAMPLES_PER_OPERATION = 15
BUDGET_S = 60


def _fuzz(url: str, key: str) -> tuple[int, list[str]]:
    """Operations exercised, and each failure found."""
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    selected = [checks.not_a_server_error, checks.response_schema_conformance]
    headers = {"Authorization": f"Bearer {key}"}
    failures: list[str] = []
    exercised = 0
    deadline = time.monotonic() + BUDGET_S
    for result in schema.get_all_operations():
        if time.monotonic() > deadline:
            break
        operation = result.ok()
        # Valid requests, and requests that break the schema (those must be refused with a 4xx, never fail).
        strategy = operation.as_strategy(GenerationMode.POSITIVE) | operation.as_strategy(GenerationMode.NEGATIVE)

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy)
        def exercise(case: schemathesis.Case) -> None:
            case.call_and_validate(base_url=url, headers=headers, checks=selected, timeout=30)

        exercised += 1
        try:
            exercise()
        except Exception as failure:  # each operation's failures are collected, then reported together
            failures.append(f"{operation.label}: {failure}")
    return exercised, failures


# Raised by schemathesis' own strategies (they draw from `random`), nothing of ours.
@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")
async def test_no_generated_request_gets_a_5xx_or_an_off_schema_response(gateway):
    # An admin key reaches every route; its own generous limit keeps 429s from hiding the rest.
    admin = await gateway.keys.make("admin", rate_limit="100000/minute")
    started = time.monotonic()
    # The inference routes are answered by a stand-in: this test fuzzes the gateway, not a model.
    async with fake_inference(gateway.inference):
        exercised, failures = await asyncio.to_thread(_fuzz, gateway.url, admin.secret)
    assert failures == []
    assert exercised >= 15
    assert time.monotonic() - started < BUDGET_S + 30
