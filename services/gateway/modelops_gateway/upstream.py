"""The platform's internal services over HTTP (the registry, the inference service): one client class that sends
the caller's request id and trace context along, proves who calls with the gateway's service token (acting for a
user where the upstream asks who), and turns an upstream's absence or failure into domain errors
(503 to retry, 502 otherwise). Framework-free: logic reads its answers; web/relay.py hands them on as they are."""

from __future__ import annotations

from typing import Any

import httpx
from modelops_shared.errors import PROBLEM_JSON, DomainError
from modelops_shared.service_tokens import BEARER, ServiceIdentity
from modelops_shared.telemetry import REQUEST_ID, current_trace_headers, request_id_var

RETRY_AFTER_S = 5


class UpstreamUnavailable(DomainError):
    status = 503

    def __init__(self, upstream: str, detail: str) -> None:
        super().__init__(detail, slug=f"{upstream}-unavailable", retry_after=RETRY_AFTER_S)


class UpstreamFailed(DomainError):
    status = 502

    def __init__(self, upstream: str, detail: str, **extensions: Any) -> None:
        super().__init__(detail, slug=f"{upstream}-error", **extensions)


class Upstream:
    """One internal service, named in problem types (`registry-unavailable`) and, by `label`, in their details."""

    def __init__(
        self,
        name: str,
        base_url: str,
        timeout: httpx.Timeout,
        *,
        label: str,
        identity: ServiceIdentity,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.name = name
        self.label = label
        self.identity = identity
        self.http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), timeout=timeout, transport=transport, auth=identity.auth(name)
        )

    async def request(
        self, method: str, path: str, *, params: dict[str, Any] | None = None, json: Any = None
    ) -> httpx.Response:
        """The answer, read whole; 4xx answers are returned too."""
        return await self.send(method, path, params=params, json=json, stream=False)

    async def send(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        content: bytes | None = None,
        stream: bool,
        relay_problems: bool = False,
        acting_for: tuple[str, str] | None = None,
    ) -> httpx.Response:
        """The answer; with `stream`, its body is still to read and the caller closes it (`aclose`). Any 5xx is a bad
        gateway, never our 500, except with `relay_problems` the upstream's own problem+json (a model still loading),
        which is the client's to see. `acting_for` (user name, role) puts the user in the token: the upstream's
        only source for who acts."""
        headers = {**context_headers(), **({"Content-Type": "application/json"} if content is not None else {})}
        if acting_for is not None:
            subject, role = acting_for
            headers["Authorization"] = BEARER + self.identity.token(self.name, subject=subject, role=role)
        outgoing = self.http.build_request(method, path, params=params, json=json, content=content, headers=headers)
        try:
            answer = await self.http.send(outgoing, stream=stream)
        except httpx.TransportError as error:
            raise self._unreachable(error) from None
        if answer.status_code >= 500 and not (relay_problems and _is_problem(answer)):
            await answer.aclose()
            raise self.failure(answer.status_code)
        return answer

    async def json_of(self, path: str) -> Any:
        """The JSON body of a GET that must succeed; any other answer is a bad gateway."""
        answer = await self.request("GET", path)
        if answer.status_code != 200:
            raise self.failure(answer.status_code)
        return answer.json()

    def failure(self, status: int) -> DomainError:
        """An upstream answer the gateway cannot use: a service that is starting is a 503 to retry."""
        if status == 503:
            return UpstreamUnavailable(self.name, f"the {self.label} is not ready")
        if status >= 500:
            return UpstreamFailed(self.name, f"the {self.label} failed ({status})", upstream_status=status)
        return UpstreamFailed(self.name, f"the {self.label} answered {status}")

    def _unreachable(self, error: httpx.TransportError) -> DomainError:
        if isinstance(error, httpx.ConnectError | httpx.ConnectTimeout):
            return UpstreamUnavailable(self.name, f"the {self.label} cannot be reached")
        return UpstreamFailed(self.name, f"the {self.label} did not answer properly ({type(error).__name__})")

    async def __aenter__(self) -> Upstream:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.http.aclose()


def context_headers() -> dict[str, str]:
    """So the upstream's log lines and spans join the request that caused them."""
    request_id = request_id_var.get()
    return {**current_trace_headers(), **({REQUEST_ID: request_id} if request_id else {})}


def _is_problem(answer: httpx.Response) -> bool:
    return str(answer.headers.get("content-type", "")).startswith(PROBLEM_JSON)
