"""An upstream's answer handed to the client as it is: read whole (`forwarded`), or streamed through as its bytes
arrive (`streamed`: downloads, completions with `stream: true`), problems included."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
from fastapi import Response
from fastapi.responses import StreamingResponse

from ..upstream import Upstream

# A buffered body is re-encoded by us (httpx decodes it), so only the headers that describe its meaning pass.
BUFFERED_HEADERS = ("content-type", "digest", "retry-after", "cache-control", "x-should-retry")
# Raw bytes pass as they are, so their encoding and length still describe them.
STREAMED_HEADERS = (*BUFFERED_HEADERS, "content-length", "content-encoding", "x-accel-buffering")


async def forwarded(
    upstream: Upstream,
    method: str,
    path: str,
    *,
    params: dict[str, Any] | None = None,
    json: Any = None,
    relay_problems: bool = False,
    acting_for: tuple[str, str] | None = None,
) -> Response:
    """The upstream's answer to the request, read whole (`relay_problems`, `acting_for`: as in `Upstream.send`)."""
    answer = await upstream.send(
        method, path, params=params, json=json, stream=False, relay_problems=relay_problems, acting_for=acting_for
    )
    return Response(answer.content, answer.status_code, headers=kept(answer.headers, BUFFERED_HEADERS))


async def streamed(
    upstream: Upstream,
    method: str,
    path: str,
    *,
    content: bytes | None = None,
    json: Any = None,
    params: dict[str, Any] | None = None,
    only_success: bool = False,
    relay_problems: bool = False,
    acting_for: tuple[str, str] | None = None,
) -> Response:
    """The upstream's answer streamed through without being held whole. `only_success`: any other answer (an error,
    small) is read whole first, so that its length and type are exact. `relay_problems`, `acting_for`: as in
    `Upstream.send`."""
    answer = await upstream.send(
        method,
        path,
        content=content,
        json=json,
        params=params,
        stream=True,
        relay_problems=relay_problems,
        acting_for=acting_for,
    )
    if only_success and answer.status_code != 200:
        body = await read_whole(answer)
        return Response(body, answer.status_code, headers=kept(answer.headers, BUFFERED_HEADERS))
    return StreamingResponse(relayed(answer), answer.status_code, headers=kept(answer.headers, STREAMED_HEADERS))


async def read_whole(answer: httpx.Response) -> bytes:
    """A streamed answer's body, read whole; its connection is released."""
    try:
        return await answer.aread()
    finally:
        await answer.aclose()


async def relayed(answer: httpx.Response) -> AsyncIterator[bytes]:
    """The upstream body as it arrives; its connection is released however the response ends (a client that hangs
    up included, when a background task would not run)."""
    try:
        async for chunk in answer.aiter_raw():
            yield chunk
    finally:
        await answer.aclose()


def kept(headers: httpx.Headers, names: tuple[str, ...]) -> dict[str, str]:
    return {name: headers[name] for name in names if name in headers}
