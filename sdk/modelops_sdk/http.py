"""The HTTP layer under both clients: auth, timeouts, retries (one `Idempotency-Key` per creating call, kept across
its retries so the gateway answers a retry with the first response), and problem documents raised as ApiError."""

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
    if response.is_error:
        response.read()
        raise ApiError.of(response)
    return response


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
        try:
            for attempt in Retrying(**self.retry.tenacity()):
                with attempt, ExitStack() as stack:
                    files = parts(stack) if parts else None
                    return _checked(self.client.request(method, path, headers=headers, files=files, **kwargs))
        except httpx.TransportError as error:
            raise ConnectionFailed(f"{method} {path}: {error!r}") from error
        raise AssertionError("tenacity re-raises the last error")  # pragma: no cover

    def call(self, answer: type[T], method: str, path: str, **kwargs: Any) -> T:
        """`request`, its JSON body validated as `answer` (a model, or any type pydantic validates)."""
        return TypeAdapter(answer).validate_json(self.request(method, path, **kwargs).content)

    @contextmanager
    def stream(self, method: str, path: str, **kwargs: Any) -> Iterator[httpx.Response]:
        """A response to read as it arrives; opening it is retried, reading it is the caller's business."""
        for attempt in Retrying(**self.retry.tenacity()):
            with attempt:
                response = _checked(self.client.send(self.client.build_request(method, path, **kwargs), stream=True))
        try:
            yield response
        finally:
            response.close()

    def download(self, path: str, target: Path) -> None:
        """A file streamed to `target` through a sibling temporary file, so a failed download leaves no half file."""
        partial = target.with_name(target.name + ".part")
        target.parent.mkdir(parents=True, exist_ok=True)
        for attempt in Retrying(**self.retry.tenacity()):
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
        try:
            async for attempt in AsyncRetrying(**self.retry.tenacity()):
                with attempt, ExitStack() as stack:
                    files = parts(stack) if parts else None
                    response = await self.client.request(method, path, headers=headers, files=files, **kwargs)
                    if response.is_error:
                        await response.aread()
                    return _checked(response)
        except httpx.TransportError as error:
            raise ConnectionFailed(f"{method} {path}: {error!r}") from error
        raise AssertionError("tenacity re-raises the last error")  # pragma: no cover

    async def call(self, answer: type[T], method: str, path: str, **kwargs: Any) -> T:
        """`request`, its JSON body validated as `answer` (a model, or any type pydantic validates)."""
        return TypeAdapter(answer).validate_json((await self.request(method, path, **kwargs)).content)

    @asynccontextmanager
    async def stream(self, method: str, path: str, **kwargs: Any) -> AsyncIterator[httpx.Response]:
        """A response to read as it arrives; opening it is retried, reading it is the caller's business."""
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
        async for attempt in AsyncRetrying(**self.retry.tenacity()):
            with attempt:
                async with self.stream("GET", path) as response:
                    with partial.open("wb") as out:
                        async for chunk in response.aiter_bytes():
                            out.write(chunk)
        partial.replace(target)

    async def aclose(self) -> None:
        await self.client.aclose()
