"""The vLLM backend: one vLLM OpenAI server per base model, LoRA adapters loaded into it at runtime, and completions
relayed to it (SSE streams included). vLLM batches continuously and mixes adapters in a batch by itself, so this
backend has no scheduler of ours.

Chosen when `MODELOPS_INFERENCE_BACKEND=vllm`, or with `auto` when vllm is importable and CUDA is available."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import logging
import os
import shlex
import sys
import time
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from modelops_shared.devstack import free_port

from .relay import InFlight, RelayError, RuntimeAdapters

if TYPE_CHECKING:
    from .settings import InferenceSettings

log = logging.getLogger(__name__)


def vllm_available() -> bool:
    """vllm importable and a CUDA device present."""
    if importlib.util.find_spec("vllm") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


def choose_backend(setting: str) -> str:
    """`transformers` or `vllm`: the setting itself, or for `auto` vllm exactly when it can run here."""
    if setting == "auto":
        return "vllm" if vllm_available() else "transformers"
    if setting not in ("transformers", "vllm"):
        raise ValueError(f"unknown inference backend {setting!r}")
    return setting


class VllmBackend(RuntimeAdapters):
    """Adapters on one vLLM server and the requests relayed to it. `client` talks to the server (its base URL set);
    `process` is the server when this backend started it.

    - The server is a subprocess, `python -m vllm.entrypoints.openai.api_server --model <verified base dir>
      --served-model-name <base artifact id> --enable-lora ...`, with VLLM_ALLOW_RUNTIME_LORA_UPDATING=True so that
      its adapter routes exist: `POST /v1/load_lora_adapter {"lora_name", "lora_path"}` and
      `POST /v1/unload_lora_adapter {"lora_name"}`.
    - An adapter's `lora_name` is its artifact id and its `lora_path` the verified local copy; a request names it (or
      the base's served name) as `model`, and answers carry the name the client asked for.
    - The adapter budget, least-recently-used eviction and "never evict one in use" are the same as the transformers
      backend's; a revoked adapter's running requests stop delivering at once, then the adapter is unloaded.
    """

    refused_slug = "vllm-refused"

    def __init__(
        self,
        name: str,
        client: httpx.AsyncClient,
        *,
        max_adapters: int,
        max_in_flight: int,
        process: asyncio.subprocess.Process | None = None,
    ) -> None:
        super().__init__(name, max_adapters)
        self.client = client
        self.process = process
        self._in_flight = InFlight(name, max_in_flight)

    @classmethod
    async def launch(cls, name: str, path: Path, settings: InferenceSettings) -> VllmBackend:
        """Start a vLLM server for the base model at `path` and wait until it is healthy."""
        port = free_port()
        command = [
            settings.inference_vllm_python or sys.executable,
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            str(path),
            "--served-model-name",
            name,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--enable-lora",
            "--max-loras",
            str(settings.inference_max_adapters),
            "--max-lora-rank",
            str(settings.inference_vllm_max_lora_rank),
            *shlex.split(settings.inference_vllm_args),
        ]
        env = {**os.environ, "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True"}
        log.info("starting vLLM for %s: %s", name, shlex.join(command))
        process = await asyncio.create_subprocess_exec(*command, env=env)
        client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=httpx.Timeout(600, connect=5))
        backend = cls(
            name,
            client,
            max_adapters=settings.inference_max_adapters,
            max_in_flight=settings.inference_max_batch + settings.inference_max_queue,
            process=process,
        )
        try:
            await backend.wait_healthy(settings.inference_vllm_start_timeout_s)
        except BaseException:
            await backend.close()
            raise
        return backend

    async def wait_healthy(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            if self.process is not None and self.process.returncode is not None:
                raise RelayError(503, f"the vLLM server of {self.name} exited with {self.process.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if (await self.client.get("/health")).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise RelayError(503, f"the vLLM server of {self.name} did not start within {timeout_s:.0f}s")
            await asyncio.sleep(1)

    def abort(self, adapter: str, reason: str) -> None:
        """Every running request of `adapter` delivers nothing more and ends with `reason` as its error."""
        self._in_flight.abort(adapter, reason)

    def busy(self) -> bool:
        return bool(self._in_flight.calls)

    async def close(self) -> None:
        await self.client.aclose()
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 30)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()

    # Adapters: the deployments' interface is RuntimeAdapters'; these load and free one on the server.

    async def _load(self, name: str, path: Path) -> None:
        response = await self._post("/v1/load_lora_adapter", {"lora_name": name, "lora_path": str(path)})
        # A server that kept the adapter across our bookkeeping (we restarted, it did not) says so: that is loaded.
        if response.status_code != 200 and "already" not in response.text:
            raise RelayError(response.status_code, f"vLLM could not load adapter {name}: {_message(response)}")
        log.info("loaded adapter %s onto vLLM %s", name, self.name)

    async def _free(self, name: str) -> None:
        response = await self._post("/v1/unload_lora_adapter", {"lora_name": name})
        if response.status_code != 200:
            log.warning("vLLM %s could not unload adapter %s: %s", self.name, name, _message(response))

    async def _post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        try:
            return await self.client.post(path, json=body)
        except httpx.HTTPError as error:
            raise RelayError(503, f"the vLLM server of {self.name} is unreachable: {error}") from error

    # Requests: relayed with the adapter (or the base) as the model name.

    def _request(self, body: dict[str, Any], adapter: str | None, stream: bool) -> dict[str, Any]:
        upstream = {key: value for key, value in body.items() if value is not None}
        upstream["model"] = adapter or self.name
        upstream["stream"] = stream
        if stream:
            upstream["stream_options"] = {"include_usage": True}
        return upstream

    async def complete(self, endpoint: str, body: dict[str, Any], adapter: str | None, model: str) -> dict[str, Any]:
        """One non-streaming answer of `endpoint` (`/v1/completions` or `/v1/chat/completions`) named `model`."""
        call = self._in_flight.admit(adapter)
        try:
            try:
                response = await self.client.post(endpoint, json=self._request(body, adapter, stream=False))
            except httpx.HTTPError as error:
                raise RelayError(503, f"the vLLM server of {self.name} is unreachable: {error}") from error
            if response.status_code != 200:
                raise RelayError(response.status_code, _message(response))
            if call.aborted:
                raise RelayError(503, call.aborted)
            answer: dict[str, Any] = response.json()
            answer["model"] = model
            return answer
        finally:
            self._in_flight.done(call)

    async def stream(
        self, endpoint: str, body: dict[str, Any], adapter: str | None, model: str
    ) -> AsyncGenerator[dict[str, Any], None]:
        """The chunks of a streamed answer named `model`, its usage chunk last; raises RelayError before the first
        chunk when vLLM refuses, and after any chunk when the adapter is revoked or the server fails mid-stream."""
        call = self._in_flight.admit(adapter)
        try:
            request = self.client.build_request("POST", endpoint, json=self._request(body, adapter, stream=True))
            try:
                response = await self.client.send(request, stream=True)
            except httpx.HTTPError as error:
                raise RelayError(503, f"the vLLM server of {self.name} is unreachable: {error}") from error
            try:
                if response.status_code != 200:
                    await response.aread()
                    raise RelayError(response.status_code, _message(response))
                async for line in response.aiter_lines():
                    if call.aborted:
                        raise RelayError(503, call.aborted)
                    if not line.startswith("data:"):
                        continue
                    data = line[len("data:") :].strip()
                    if data == "[DONE]":
                        return
                    chunk: dict[str, Any] = json.loads(data)
                    if "error" in chunk:
                        raise RelayError(503, _error_text(chunk))
                    chunk["model"] = model
                    yield chunk
            except httpx.HTTPError as error:
                raise RelayError(503, f"the vLLM stream of {self.name} broke: {error}") from error
            finally:
                await response.aclose()
        finally:
            self._in_flight.done(call)


def _message(response: httpx.Response) -> str:
    try:
        return _error_text(response.json())
    except ValueError:
        return response.text or f"HTTP {response.status_code}"


def _error_text(payload: Any) -> str:
    """vLLM's error text: `{"error": {"message"}}` (newer servers) or `{"message"}` (older ones)."""
    if isinstance(payload, dict):
        error = payload.get("error", payload)
        if isinstance(error, dict) and "message" in error:
            return str(error["message"])
        if isinstance(error, str):
            return error
    return json.dumps(payload)
