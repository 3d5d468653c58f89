"""The llama.cpp backend: a GGUF `quantized_model` served in this process by llama-cpp-python, GGUF LoRAs applied per
request at run time, and OpenAI bodies answered by llama.cpp's own completion code (its chat template, sampling and
chunk format), streams included.

One context per model, so requests take turns on one thread (llama-cpp-python has no continuous batching); the
in-flight bound (batch plus queue) refuses the rest with 429s. Each request starts from an empty cache: a prompt whose
prefix was cached is otherwise evaluated in different batch shapes, and greedy answers then differ at near ties
(seen: the same chat request answered two ways); and a cache computed under another adapter is wrong anyway."""

from __future__ import annotations

import asyncio
import ctypes
import logging
from collections.abc import AsyncGenerator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import llama_cpp
from llama_cpp import Llama

from .relay import InFlight, RelayError, RuntimeAdapters

if TYPE_CHECKING:
    from .settings import InferenceSettings

log = logging.getLogger(__name__)

T = TypeVar("T")
GGUF_NAME = "model.gguf"
# What llama-cpp-python's completion functions take from an OpenAI body; anything else in it is not passed on.
_PASSED = ("max_tokens", "temperature", "top_p", "stop", "seed", "presence_penalty", "frequency_penalty", "logprobs")


class LlamaCppBackend(RuntimeAdapters):
    """A GGUF model and its GGUF LoRA adapters (by artifact id) in llama.cpp, with the same adapter budget (least
    recently used evicted, never one in use) and revocation as the other backends."""

    refused_slug = "llama-cpp-refused"

    def __init__(self, name: str, llm: Llama, executor: ThreadPoolExecutor, *, max_adapters: int, max_in_flight: int):
        super().__init__(name, max_adapters)
        self.llm = llm
        self._executor = executor
        self._adapters: dict[str, Any] = {}  # artifact id -> llama_adapter_lora handle
        self._paths: dict[str, Path] = {}  # every adapter deployed, so one evicted comes back on its next request
        self._active: str | None = None  # the adapter the context computes with now
        self._in_flight = InFlight(name, max_in_flight)

    @classmethod
    async def load(cls, name: str, path: Path, settings: InferenceSettings) -> LlamaCppBackend:
        """Load the verified `quantized_model` folder at `path` (its one GGUF)."""
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"llama-cpp-{name[:16]}")
        model_path = str(path / GGUF_NAME)

        def load() -> Llama:
            return Llama(
                model_path=model_path,
                n_ctx=settings.inference_gguf_context,
                n_threads=settings.inference_gguf_threads,
                verbose=False,
            )

        try:
            llm = await asyncio.get_running_loop().run_in_executor(executor, load)
        except ValueError as error:  # llama-cpp-python's word for a file llama.cpp could not load
            executor.shutdown()
            raise RelayError(422, f"llama.cpp could not load {name}: {error}") from None
        in_flight = settings.inference_max_batch + settings.inference_max_queue
        return cls(name, llm, executor, max_adapters=settings.inference_max_adapters, max_in_flight=in_flight)

    # Adapters: the deployments' interface is RuntimeAdapters'; these load and free one in llama.cpp.

    async def acquire_adapter(self, name: str, path: Path) -> None:
        self._paths[name] = path
        await super().acquire_adapter(name, path)

    async def remove_adapter(self, name: str) -> None:
        await super().remove_adapter(name)
        self._paths.pop(name, None)

    def abort(self, adapter: str, reason: str) -> None:
        self._in_flight.abort(adapter, reason)

    def busy(self) -> bool:
        return bool(self._in_flight.calls)

    async def close(self) -> None:
        for name in self.loaded_adapters():
            await self._unload(name)
        await self._run(self.llm.close)
        self._executor.shutdown(wait=True)

    async def _load(self, name: str, path: Path) -> None:
        file = str(path / GGUF_NAME).encode()
        handle = await self._run(lambda: llama_cpp.llama_adapter_lora_init(self.llm.model, file))
        if not handle:
            raise RelayError(422, f"llama.cpp could not load the GGUF LoRA {name} onto {self.name}")
        self._adapters[name] = handle
        log.info("loaded GGUF LoRA %s onto %s", name, self.name)

    async def _free(self, name: str) -> None:
        handle = self._adapters.pop(name)

        def free() -> None:
            if self._active == name:
                self._apply(None)
            llama_cpp.llama_adapter_lora_free(handle)

        await self._run(free)

    def _apply(self, adapter: str | None) -> None:
        """Make `adapter` (or none) the context's, with an empty cache (on the model thread)."""
        self.llm.reset()  # type: ignore[no-untyped-call]
        if adapter == self._active:
            return
        if adapter is None:
            status = llama_cpp.llama_set_adapters_lora(self.llm.ctx, None, 0, None)
        else:
            handles = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(self._adapters[adapter])
            status = llama_cpp.llama_set_adapters_lora(self.llm.ctx, handles, 1, (ctypes.c_float * 1)(1.0))
        if status != 0:
            raise RelayError(503, f"llama.cpp could not apply adapter {adapter} on {self.name} ({status})")
        self._active = adapter

    # Requests: answered by llama-cpp-python's OpenAI-shaped completion functions.

    async def complete(self, endpoint: str, body: dict[str, Any], adapter: str | None, model: str) -> dict[str, Any]:
        call = self._in_flight.admit(adapter)
        try:
            await self._hold(adapter)
            try:
                answer: dict[str, Any] = await self._run(self._answer(endpoint, body, adapter, stream=False))
            finally:
                self._release(adapter)
            if call.aborted:
                raise RelayError(503, call.aborted)
            answer["model"] = model
            return answer
        finally:
            self._in_flight.done(call)

    async def stream(
        self, endpoint: str, body: dict[str, Any], adapter: str | None, model: str
    ) -> AsyncGenerator[dict[str, Any], None]:
        """The chunks of a streamed answer named `model`, a usage chunk last (as OpenAI's `include_usage`)."""
        call = self._in_flight.admit(adapter)
        try:
            await self._hold(adapter)
            try:
                chunks: Iterator[dict[str, Any]] = await self._run(self._answer(endpoint, body, adapter, stream=True))
                usage = _StreamUsage()
                while (chunk := await self._run(lambda: usage.next(chunks, self.llm))) is not None:
                    if call.aborted:
                        raise RelayError(503, call.aborted)
                    chunk["model"] = model
                    yield chunk
                if usage.template is not None:
                    yield usage.chunk(model)
            finally:
                self._release(adapter)
        finally:
            self._in_flight.done(call)

    async def _hold(self, adapter: str | None) -> None:
        if adapter is not None:
            if adapter not in self._paths:
                raise RelayError(404, f"adapter {adapter} is not deployed on {self.name}")
            await self.acquire_adapter(adapter, self._paths[adapter])

    def _release(self, adapter: str | None) -> None:
        if adapter is not None:
            self.release_adapter(adapter)

    def _answer(self, endpoint: str, body: dict[str, Any], adapter: str | None, *, stream: bool) -> Callable[[], Any]:
        arguments = {key: body[key] for key in _PASSED if body.get(key) is not None}

        def answer() -> Any:
            self._apply(adapter)
            try:
                if endpoint.endswith("/chat/completions"):
                    messages = [{"role": m["role"], "content": m["content"]} for m in body["messages"]]
                    return self.llm.create_chat_completion(messages=messages, stream=stream, **arguments)  # type: ignore[arg-type]
                return self.llm.create_completion(prompt=body["prompt"], stream=stream, **arguments)
            except ValueError as error:  # a prompt longer than the context, a bad argument
                raise RelayError(400, str(error)) from None

        return answer

    async def _run(self, function: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, function)


class _StreamUsage:
    """What OpenAI's last chunk says with `include_usage`, which llama-cpp-python's streams lack: the prompt's tokens
    (the context's length when the first token comes out) and the completion's (one per chunk that carries text; a
    character split across tokens comes out as one chunk, so this may count a token short)."""

    def __init__(self) -> None:
        self.template: dict[str, Any] | None = None
        self.prompt_tokens = 0
        self.completion_tokens = 0

    def next(self, chunks: Iterator[dict[str, Any]], llm: Llama) -> dict[str, Any] | None:
        """The next chunk (on the model thread), counted; None at the end."""
        chunk = next(chunks, None)
        if chunk is None:
            return None
        if self.template is None:
            self.template = chunk
        texts = sum(1 for c in chunk.get("choices", []) if c.get("text") or (c.get("delta") or {}).get("content"))
        if texts and not self.completion_tokens:
            self.prompt_tokens = llm.n_tokens
        self.completion_tokens += texts
        return chunk

    def chunk(self, model: str) -> dict[str, Any]:
        assert self.template is not None
        usage = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }
        ids = {key: self.template[key] for key in ("id", "object", "created")}
        return {**ids, "model": model, "choices": [], "usage": usage}
