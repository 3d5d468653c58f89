"""Which failures are retried and how long to wait: 429, 502, 503, a 409 saying that the first attempt of this very
request (its Idempotency-Key) still runs, and connection errors, with jittered exponential backoff, or the server's
`Retry-After` when it sends one; bounded in attempts and in each wait."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import httpx
from tenacity import RetryCallState, retry_if_exception, stop_after_attempt

from .errors import ApiError

RETRY_STATUSES = frozenset({429, 502, 503})
# The gateway's answer to a retry that arrives while the first attempt still runs: retrying it gets the first's answer.
IN_USE = "idempotency-key-in-use"


@dataclass(frozen=True)
class RetryPolicy:
    """`attempts` in all (1: no retry); a `Retry-After` above `max_wait_s` is not waited for: the error is raised."""

    attempts: int = 5
    backoff_s: float = 0.5
    max_wait_s: float = 60.0

    def retryable(self, error: BaseException) -> bool:
        if isinstance(error, ApiError):
            too_long = error.retry_after is not None and error.retry_after > self.max_wait_s
            in_use = error.status == 409 and error.type.endswith(f"/{IN_USE}")
            return (error.status in RETRY_STATUSES or in_use) and not too_long
        return isinstance(error, httpx.TransportError)

    def wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, ApiError) and error.retry_after is not None:
            return error.retry_after
        backoff = self.backoff_s * 2 ** (state.attempt_number - 1)
        return min(self.max_wait_s, random.uniform(backoff / 2, backoff))  # jitter spreads out clients retrying at once

    def tenacity(self) -> dict[str, Any]:
        """Arguments for tenacity's `Retrying` and `AsyncRetrying`: the last error is re-raised as it was."""
        return {
            "stop": stop_after_attempt(self.attempts),
            "wait": self.wait,
            "retry": retry_if_exception(self.retryable),
            "reraise": True,
        }
