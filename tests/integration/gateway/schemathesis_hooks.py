"""Schemathesis hooks for the gateway's fuzzing run (test_gateway_openapi.py): a valid Idempotency-Key is made
unique per request, since the gateway rightly refuses one key reused for another request (422), which the fuzzer,
drawing keys from a small space, would otherwise hit by chance. An invalid key is left as drawn."""

from __future__ import annotations

import uuid
from typing import Any

import schemathesis

IDEMPOTENCY_KEY = "Idempotency-Key"


@schemathesis.hook
def before_call(context: Any, case: schemathesis.Case, **kwargs: Any) -> None:
    """Every phase's requests pass here (coverage cases are not drawn through the header strategies)."""
    key = (case.headers or {}).get(IDEMPOTENCY_KEY)
    if case.headers is not None and key is not None and 1 <= len(key) <= 255:
        case.headers[IDEMPOTENCY_KEY] = uuid.uuid4().hex
