"""What the engines that answer OpenAI requests themselves (vLLM's server, llama.cpp in process) share with the
routes: their errors, the in-flight bound, revocation of running requests, and usage counting."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from . import metrics
from .adapter_slots import AdapterSlots


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


log = logging.getLogger(__name__)


class RuntimeAdapters:
    """Adapters loaded into an engine at run time under the budget every backend keeps (least recently used idle
    ones evicted, never one in use): what `acquire_adapter` and the rest of the deployments' interface do around an
    engine's own `_load` and `_free`."""

    def __init__(self, name: str, max_adapters: int) -> None:
        self.name = name
        self._slots = AdapterSlots(name, max_adapters)
        self._lock = asyncio.Lock()  # one load/unload at a time, so the budget holds

    async def acquire_adapter(self, name: str, path: Path) -> None:
        """Load `name` unless loaded (evicting the least recently used idle adapter beyond the budget) and hold it
        until `release_adapter`, so it cannot be evicted while a request uses it."""
        self._slots.hold(name)
        try:
            async with self._lock:
                if self._slots.touch(name):
                    return
                for idle in self._slots.to_evict():
                    log.info("evicting adapter %s from %s (least recently used)", idle, self.name)
                    await self._unload(idle)
                await self._load(name, path)
                self._slots.add(name, path)
        except BaseException:
            self._slots.release(name)
            raise

    def release_adapter(self, name: str) -> None:
        self._slots.release(name)

    async def remove_adapter(self, name: str) -> None:
        async with self._lock:
            await self._unload(name)

    def loaded_adapters(self) -> list[str]:
        return self._slots.names()

    async def _unload(self, name: str) -> None:
        if self._slots.discard(name):
            await self._free(name)

    async def _load(self, name: str, path: Path) -> None:
        raise NotImplementedError

    async def _free(self, name: str) -> None:
        raise NotImplementedError


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

    def busy(self) -> bool: ...

    async def close(self) -> None: ...


def count_usage(deployment: str, model: str, usage: dict[str, Any] | None) -> None:
    """Token counters from an answer's `usage` (the engine counts; this service only records)."""
    if usage:
        metrics.TOKENS_IN.labels(deployment, model).inc(int(usage.get("prompt_tokens") or 0))
        metrics.TOKENS_OUT.labels(deployment, model).inc(int(usage.get("completion_tokens") or 0))
