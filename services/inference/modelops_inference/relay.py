"""What the engines that answer OpenAI requests themselves (vLLM's server, llama.cpp in process) share with the
routes: their errors, the in-flight bound, revocation of running requests, and usage counting."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from . import metrics


class RelayError(Exception):
    """The engine refused or failed a request; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class RelayBusy(Exception):
    """More requests are in flight to this engine than its batch plus queue."""


@dataclass(eq=False)
class Call:
    """A request in flight; `aborted` holds why, once its adapter was revoked."""

    adapter: str | None
    aborted: str | None = None


class InFlight:
    """The requests in flight to one engine, bounded: beyond `limit` a request is refused (RelayBusy)."""

    def __init__(self, name: str, limit: int) -> None:
        self.name = name
        self.limit = limit
        self.calls: set[Call] = set()

    def admit(self, adapter: str | None) -> Call:
        if len(self.calls) >= self.limit:
            raise RelayBusy(f"{len(self.calls)} requests are in flight to {self.name}")
        call = Call(adapter)
        self.calls.add(call)
        return call

    def done(self, call: Call) -> None:
        self.calls.discard(call)

    def abort(self, adapter: str, reason: str) -> None:
        """Every running request of `adapter` delivers nothing more and ends with `reason` as its error."""
        for call in self.calls:
            if call.adapter == adapter and call.aborted is None:
                call.aborted = reason


class RelayBackend(Protocol):
    """An engine that answers OpenAI bodies itself, with adapters by artifact id."""

    name: str
    refused_slug: str

    async def complete(
        self, endpoint: str, body: dict[str, Any], adapter: str | None, model: str
    ) -> dict[str, Any]: ...

    def stream(
        self, endpoint: str, body: dict[str, Any], adapter: str | None, model: str
    ) -> AsyncGenerator[dict[str, Any], None]: ...

    async def acquire_adapter(self, name: str, path: Path) -> None: ...

    def release_adapter(self, name: str) -> None: ...

    async def remove_adapter(self, name: str) -> None: ...

    def loaded_adapters(self) -> list[str]: ...

    def abort(self, adapter: str, reason: str) -> None: ...

    async def close(self) -> None: ...


def count_usage(deployment: str, model: str, usage: dict[str, Any] | None) -> None:
    """Token counters from an answer's `usage` (the engine counts; this service only records)."""
    if usage:
        metrics.TOKENS_IN.labels(deployment, model).inc(int(usage.get("prompt_tokens") or 0))
        metrics.TOKENS_OUT.labels(deployment, model).inc(int(usage.get("completion_tokens") or 0))
