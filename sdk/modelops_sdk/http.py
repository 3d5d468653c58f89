"""What both clients' HTTP layers share: auth, timeouts, the `Idempotency-Key` of a creating call (kept across its
retries so the gateway answers a retry with the first response), problem documents raised as ApiError, and a gateway
that stays unreachable raised as ConnectionFailed.

The layer itself is written once, for asyncio, in `_async/http.py`; the blocking one is generated from it. What is
retried and for how long is decided by `RetryPolicy` (retrying.py, from the ApiError's status and `Retry-After`)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import httpx

from .errors import ApiError, ConnectionFailed

# Multipart parts built afresh for each attempt: a retry must not send file objects an earlier attempt consumed.
Parts = Callable[[ExitStack], list[tuple[str, Any]]]

DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)


def auth_headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def idempotency_headers(creates: bool, headers: dict[str, str] | None) -> dict[str, str]:
    return {**({"Idempotency-Key": uuid.uuid4().hex} if creates else {}), **(headers or {})}


def checked(response: httpx.Response) -> httpx.Response:
    """The response, or its problem raised as ApiError; an error's body must have been read (a streamed one too)."""
    if response.is_error:
        raise ApiError.of(response)
    return response


@contextmanager
def reachable(method: str, path: str) -> Iterator[None]:
    """A transport error that outlived every retry is raised as ConnectionFailed, whatever httpx called it."""
    try:
        yield
    except httpx.TransportError as error:
        raise ConnectionFailed(f"{method} {path}: {error!r}") from error
