"""The HTTP layer under both clients: auth, timeouts, retries (one `Idempotency-Key` per creating call, kept across
its retries so the gateway answers a retry with the first response), and problem documents raised as ApiError.

The blocking and the asyncio twins differ only in how they wait: what is retried and for how long is decided once,
by `RetryPolicy` (retrying.py, from the ApiError's status and `Retry-After`), what a request sends by the helpers
below, and a gateway that stays unreachable becomes ConnectionFailed through `_reachable` in both."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
from pydantic import TypeAdapter
from tenacity import AsyncRetrying, Retrying

from .errors import ApiError, ConnectionFailed
from .retrying import RetryPolicy

# Multipart parts built afresh for each attempt: a retry must not send file objects an earlier attempt consumed.
Parts = Callable[[ExitStack], list[tuple[str, Any]]]

DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
T = TypeVar("T")


def _headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def _idempotency(creates: bool, headers: dict[str, str] | None) -> dict[str, str]:
    return {**({"Idempotency-Key": uuid.uuid4().hex} if creates else {}), **(headers or {})}


def _checked(response: httpx.Response) -> httpx.Response:
    """The response, or its problem raised as ApiError (an error's body is read first: the blocking twin's streamed
    responses have not read it yet, the asyncio twin reads it before calling this)."""
    if response.is_error:
        response.read()
        raise ApiError.of(response)
    return response


@contextmanager
def _reachable(method: str, path: str) -> Iterator[None]:
    """A transport error that outlived every retry is raised as ConnectionFailed, whatever httpx called it."""
    try:
        yield
    except httpx.TransportError as error:
        raise ConnectionFailed(f"{method} {path}: {error!r}") from error


class SyncHttp:
    """Blocking requests to the gateway."""

    def __init__(
        self, base_url: str, api_key: str | None, *, timeout: httpx.Timeout, retry: RetryPolicy, **client: Any
    ) -> None:
        self.retry = retry
        self.client = httpx.Client(base_url=base_url, headers=_headers(api_key), timeout=timeout, **client)

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
        headers = _idempotency(creates, headers)
        with _reachable(method, path):
            for attempt in Retrying(**self.retry.tenacity()):
                with attempt, ExitStack() as stack:
                    files = parts(stack) if parts else None
                    return _checked(self.client.request(method, path, headers=headers, files=files, **kwargs))
        raise AssertionError("tenacity re-raises the last error")  # pragma: no cover

    def call(self, answer: type[T], method: str, path: str, **kwargs: Any) -> T:
        """`request`, its JSON body validated as `answer` (a model, or any type pydantic validates)."""
        return TypeAdapter(answer).validate_json(self.request(method, path, **kwargs).content)

    @contextmanager
    def stream(self, method: str, path: str, **kwargs: Any) -> Iterator[httpx.Response]:
        """A response to read as it arrives; opening it is retried, reading it is the caller's business."""
        with _reachable(method, path):
            for attempt in Retrying(**self.retry.tenacity()):
                with attempt:
                    request = self.client.build_request(method, path, **kwargs)
                    response = _checked(self.client.send(request, stream=True))
        try:
            yield response
        finally:
            response.close()

    def download(self, path: str, target: Path) -> None:
        """A file streamed to `target` through a sibling temporary file, so a failed download leaves no half file."""
        partial = target.with_name(target.name + ".part")
        target.parent.mkdir(parents=True, exist_ok=True)
        with _reachable("GET", path):
            for attempt in Retrying(**self.retry.tenacity()):  # a body cut off midway is fetched again
                with attempt, self.stream("GET", path) as response, partial.open("wb") as out:
                    for chunk in response.iter_bytes():
                        out.write(chunk)
        partial.replace(target)

    def close(self) -> None:
        self.client.close()


class AsyncHttp:
    """Asynchronous requests to the gateway."""

    def __init__(
        self, base_url: str, api_key: str | None, *, timeout: httpx.Timeout, retry: RetryPolicy, **client: Any
    ) -> None:
        self.retry = retry
        self.client = httpx.AsyncClient(base_url=base_url, headers=_headers(api_key), timeout=timeout, **client)

    async def request(
        self,
        method: str,
        path: str,
        *,
        creates: bool = False,
        parts: Parts | None = None,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        headers = _idempotency(creates, headers)
        with _reachable(method, path):
            async for attempt in AsyncRetrying(**self.retry.tenacity()):
                with attempt, ExitStack() as stack:
                    files = parts(stack) if parts else None
                    # Not streamed: httpx has read the body already.
                    return _checked(await self.client.request(method, path, headers=headers, files=files, **kwargs))
        raise AssertionError("tenacity re-raises the last error")  # pragma: no cover

    async def call(self, answer: type[T], method: str, path: str, **kwargs: Any) -> T:
        """`request`, its JSON body validated as `answer` (a model, or any type pydantic validates)."""
        return TypeAdapter(answer).validate_json((await self.request(method, path, **kwargs)).content)

    @asynccontextmanager
    async def stream(self, method: str, path: str, **kwargs: Any) -> AsyncIterator[httpx.Response]:
        """A response to read as it arrives; opening it is retried, reading it is the caller's business."""
        with _reachable(method, path):
            async for attempt in AsyncRetrying(**self.retry.tenacity()):
                with attempt:
                    response = await self.client.send(self.client.build_request(method, path, **kwargs), stream=True)
                    if response.is_error:
                        await response.aread()
                        await response.aclose()
                    _checked(response)
        try:
            yield response
        finally:
            await response.aclose()

    async def download(self, path: str, target: Path) -> None:
        """A file streamed to `target` through a sibling temporary file, so a failed download leaves no half file."""
        partial = target.with_name(target.name + ".part")
        target.parent.mkdir(parents=True, exist_ok=True)
        with _reachable("GET", path):
            async for attempt in AsyncRetrying(**self.retry.tenacity()):  # a body cut off midway is fetched again
                with attempt:
                    async with self.stream("GET", path) as response:
                        with partial.open("wb") as out:
                            async for chunk in response.aiter_bytes():
                                out.write(chunk)
        partial.replace(target)

    async def aclose(self) -> None:
        await self.client.aclose()
