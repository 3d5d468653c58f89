# Generated from sdk/modelops_sdk/_async/http.py by `make sdk-models`; do not edit.
"""Requests to the gateway, each retried by the client's `RetryPolicy`; a streamed response's opening is retried,
reading it is the caller's business. Auth, idempotency and errors are the shared helpers of ../http.py."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
from pydantic import TypeAdapter
from tenacity import Retrying

from ..http import Parts, auth_headers, checked, idempotency_headers, reachable
from ..retrying import RetryPolicy

T = TypeVar("T")


class SyncHttp:
    """The gateway over one httpx client, with its retry policy."""

    def __init__(
        self, base_url: str, api_key: str | None, *, timeout: httpx.Timeout, retry: RetryPolicy, **client: Any
    ) -> None:
        self.retry = retry
        self.client = httpx.Client(base_url=base_url, headers=auth_headers(api_key), timeout=timeout, **client)

    def request(
        self,
        method: str,
        path: str,
        *,
        creates: bool = False,
        parts: Parts | None = None,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        headers = idempotency_headers(creates, headers)
        with reachable(method, path):
            for attempt in Retrying(**self.retry.tenacity()):
                with attempt, ExitStack() as stack:
                    files = parts(stack) if parts else None
                    # Not streamed: httpx has read the body already.
                    return checked(self.client.request(method, path, headers=headers, files=files, **kwargs))
        raise AssertionError("tenacity re-raises the last error")  # pragma: no cover

    def call(self, answer: type[T], method: str, path: str, **kwargs: Any) -> T:
        """`request`, its JSON body validated as `answer` (a model, or any type pydantic validates)."""
        response = self.request(method, path, **kwargs)
        return TypeAdapter(answer).validate_json(response.content)

    @contextmanager
    def stream(self, method: str, path: str, **kwargs: Any) -> Iterator[httpx.Response]:
        """A response to read as it arrives; opening it is retried, reading it is the caller's business."""
        with reachable(method, path):
            for attempt in Retrying(**self.retry.tenacity()):
                with attempt:
                    response = self.client.send(self.client.build_request(method, path, **kwargs), stream=True)
                    if response.is_error:
                        response.read()  # the problem document, for `checked`
                        response.close()
                    checked(response)
        try:
            yield response
        finally:
            response.close()

    def download(self, path: str, target: Path) -> None:
        """A file streamed to `target` through a sibling temporary file, so a failed download leaves no half file."""
        partial = target.with_name(target.name + ".part")
        target.parent.mkdir(parents=True, exist_ok=True)
        with reachable("GET", path):
            for attempt in Retrying(**self.retry.tenacity()):  # a body cut off midway is fetched again
                with attempt, self.stream("GET", path) as response, partial.open("wb") as out:
                    for chunk in response.iter_bytes():
                        out.write(chunk)
        partial.replace(target)

    def close(self) -> None:
        self.client.close()
