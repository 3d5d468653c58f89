"""The registry over HTTP: requests forwarded with the caller's request id and trace context; its answers,
problems included, passed through as they are; its absence or failure turned into 503 and 502 problems."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
from fastapi import Response
from fastapi.responses import StreamingResponse
from modelops_shared.problems import Problem
from modelops_shared.service import REQUEST_ID
from modelops_shared.telemetry import current_trace_headers, request_id_var

RETRY_AFTER_S = 5
# A buffered body is re-encoded by us (httpx decodes it), so only the headers that describe its meaning pass.
_BUFFERED_HEADERS = ("content-type", "digest")
_STREAMED_HEADERS = ("content-type", "content-length", "content-encoding", "digest")


class RegistryClient:
    def __init__(self, base_url: str, timeout_s: float) -> None:
        self.http = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout_s)

    async def request(
        self, method: str, path: str, *, params: dict[str, Any] | None = None, json: Any = None
    ) -> httpx.Response:
        """The registry's answer, read whole, for the gateway to use; its 4xx answers are returned too."""
        try:
            upstream = await self.http.request(method, path, params=params, json=json, headers=_context_headers())
        except httpx.TransportError as error:
            raise _unreachable(error) from None
        _raise_for_server_error(upstream)
        return upstream

    async def forward(
        self, method: str, path: str, *, params: dict[str, Any] | None = None, json: Any = None
    ) -> Response:
        """The registry's answer to the request, read whole, to return to the client as it is."""
        upstream = await self.request(method, path, params=params, json=json)
        return Response(upstream.content, upstream.status_code, headers=_kept(upstream.headers, _BUFFERED_HEADERS))

    async def stream(self, path: str) -> Response:
        """The registry's answer to a GET, streamed through without being held whole (file downloads)."""
        request = self.http.build_request("GET", path, headers=_context_headers())
        try:
            upstream = await self.http.send(request, stream=True)
        except httpx.TransportError as error:
            raise _unreachable(error) from None
        if upstream.status_code != 200:
            try:
                body = await upstream.aread()
            finally:
                await upstream.aclose()
            _raise_for_server_error(upstream)
            return Response(body, upstream.status_code, headers=_kept(upstream.headers, _BUFFERED_HEADERS))
        return StreamingResponse(
            _relayed(upstream), upstream.status_code, headers=_kept(upstream.headers, _STREAMED_HEADERS)
        )

    async def aclose(self) -> None:
        await self.http.aclose()


async def _relayed(upstream: httpx.Response) -> AsyncIterator[bytes]:
    """The upstream body as it arrives; its connection is released however the download ends (a client that
    hangs up included, when a background task would not run)."""
    try:
        async for chunk in upstream.aiter_raw():
            yield chunk
    finally:
        await upstream.aclose()


def _context_headers() -> dict[str, str]:
    """So the registry's log lines and spans join the request that caused them."""
    request_id = request_id_var.get()
    return {**current_trace_headers(), **({REQUEST_ID: request_id} if request_id else {})}


def _kept(headers: httpx.Headers, names: tuple[str, ...]) -> dict[str, str]:
    return {name: headers[name] for name in names if name in headers}


def _unreachable(error: httpx.TransportError) -> Problem:
    if isinstance(error, httpx.ConnectError | httpx.ConnectTimeout):
        return Problem(503, "registry-unavailable", "the registry cannot be reached", retry_after=RETRY_AFTER_S)
    return Problem(502, "registry-error", f"the registry did not answer properly ({type(error).__name__})")


def _raise_for_server_error(upstream: httpx.Response) -> None:
    """A registry that is starting is a 503 to retry; any other failure of it is a bad gateway, not our 500."""
    if upstream.status_code == 503:
        raise Problem(503, "registry-unavailable", "the registry is not ready", retry_after=RETRY_AFTER_S)
    if upstream.status_code >= 500:
        raise Problem(
            502, "registry-error", f"the registry failed ({upstream.status_code})", upstream_status=upstream.status_code
        )
