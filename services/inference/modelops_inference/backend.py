"""The model backend: one base model on one device with its PEFT adapters, hot-loaded and evicted least recently used.

`Backend` is what the scheduler and the deployments need from any engine; `TransformersBackend` is the
transformers + PEFT one (CPU or GPU). Every call that touches the model runs on the backend's single model thread,
so a forward pass never sees an adapter being loaded or deleted, and the event loop never blocks on torch."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache, PreTrainedTokenizerBase

from .adapter_slots import AdapterSlots
from .kv_cache import growing_cache
from .lora_batch import BatchedLora

log = logging.getLogger(__name__)

T = TypeVar("T")
# PEFT's name for "no adapter" in a mixed batch's `adapter_names`.
BASE_ROW = "__base__"


class Backend(Protocol):
    """What serving needs from an engine: a tokenizer, a step function, and adapters by name."""

    name: str
    tokenizer: PreTrainedTokenizerBase
    max_context: int

    async def run(self, fn: Callable[[], T]) -> T: ...

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        cache: DynamicCache | None,
        adapters: list[str | None],
    ) -> tuple[torch.Tensor, DynamicCache]: ...

    def logits(self, input_ids: torch.Tensor, adapter: str | None) -> torch.Tensor: ...

    async def acquire_adapter(self, name: str, path: Path) -> None: ...

    def release_adapter(self, name: str) -> None: ...

    async def remove_adapter(self, name: str) -> None: ...

    def loaded_adapters(self) -> list[str]: ...

    async def close(self) -> None: ...


# Loading a model or an adapter goes through transformers and PEFT code that patches globals for the while
# (accelerate's empty-weights context swaps nn.Module.register_parameter for the whole process): two loads in two
# threads at once can leave the patch in place, and every later model then comes up on the meta device. One at a time.
_LOADING = threading.Lock()


def pick_device(setting: str) -> torch.device:
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(setting)


class TransformersBackend:
    """A transformers causal LM with PEFT LoRA adapters; requests for different adapters share one forward pass
    with each row's adapter applied by `BatchedLora` (lora_batch.py)."""

    def __init__(self, name: str, path: Path, device: torch.device, max_adapters: int) -> None:
        self.name = name
        self.device = device
        self.tokenizer: PreTrainedTokenizerBase = AutoTokenizer.from_pretrained(path)
        # bf16 halves memory and uses tensor cores on GPUs; CPUs compute it slowly, so they stay in fp32.
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        with _LOADING:
            loaded: Any = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
        self._base = loaded.to(device).eval()
        self._model: Any = self._base
        self._batched: BatchedLora | None = None  # with the first adapter, the model becomes a PeftModel
        self.max_context = int(getattr(self._base.config, "max_position_embeddings", 2048))
        self._slots = AdapterSlots(name, max_adapters)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"model-{name}")

    @classmethod
    async def load(cls, name: str, path: Path, device: torch.device, max_adapters: int) -> TransformersBackend:
        return await asyncio.to_thread(cls, name, path, device, max_adapters)

    async def run(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    @torch.inference_mode()
    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        cache: DynamicCache | None,
        adapters: list[str | None],
    ) -> tuple[torch.Tensor, DynamicCache]:
        """Last-position logits (rows, vocab) and the grown cache; call on the model thread."""
        with self._adapter_rows(adapters) as rows:
            out = self._model(
                input_ids=input_ids.to(self.device),
                attention_mask=attention_mask.to(self.device),
                position_ids=position_ids.to(self.device),
                cache=cache if cache is not None else growing_cache(),
                use_cache=True,
                logits_to_keep=1,
                **rows,
            )
        return out.logits[:, -1, :].float(), out.cache

    @torch.inference_mode()
    def logits(self, input_ids: torch.Tensor, adapter: str | None) -> torch.Tensor:
        """Every position's logits (rows, positions, vocab) in one pass without a cache, to score a prompt; call on
        the model thread."""
        with self._adapter_rows([adapter] * input_ids.shape[0]) as rows:
            logits: torch.Tensor = self._model(input_ids=input_ids.to(self.device), **rows).logits
        return logits.float()

    @contextmanager
    def _adapter_rows(self, adapters: list[str | None]) -> Iterator[dict[str, Any]]:
        """The forward pass's adapter set-up, and its extra arguments. Rows of one adapter run it as PEFT's active
        adapter (fastest); rows of several (or base rows among them) run as stacked batched matmuls (lora_batch.py),
        or through PEFT's mixed batch (`adapter_names`) when an adapter is not plain LoRA."""
        if self._batched is None:
            yield {}
            return
        names = {adapter or BASE_ROW for adapter in adapters}
        if len(names) == 1 and BASE_ROW not in names:
            self._batched.single()
            (name,) = names
            if self._model.active_adapter != name:
                self._model.set_adapter(name)
            yield {}
        elif self._batched.usable:
            with self._batched.rows(adapters):
                yield {}
        else:
            self._batched.single()
            yield {"adapter_names": [adapter or BASE_ROW for adapter in adapters]}

    async def acquire_adapter(self, name: str, path: Path) -> None:
        """Load `name` unless loaded (evicting the least recently used idle adapter beyond the budget) and hold it
        until `release_adapter`, so it cannot be evicted while a request uses it."""
        self._slots.hold(name)
        try:
            await self.run(lambda: self._ensure_loaded(name, path))
        except BaseException:
            self._slots.release(name)
            raise

    def release_adapter(self, name: str) -> None:
        self._slots.release(name)

    async def remove_adapter(self, name: str) -> None:
        """Unload `name` now (revoked or undeployed); its running sequences must have been aborted first."""
        await self.run(lambda: self._unload(name))

    def loaded_adapters(self) -> list[str]:
        return self._slots.names()

    async def close(self) -> None:
        self._executor.shutdown(wait=True)

    def _ensure_loaded(self, name: str, path: Path) -> None:
        if self._slots.touch(name):
            return
        for idle in self._slots.to_evict():
            log.info("evicting adapter %s from %s (least recently used)", idle, self.name)
            self._unload(idle)
        with _LOADING:
            if self._batched is None:
                self._model = PeftModel.from_pretrained(self._base, str(path), adapter_name=name)
                self._batched = BatchedLora(self._model)
            else:
                self._model.load_adapter(str(path), adapter_name=name)
        self._batched.add(name)
        self._slots.add(name, path)
        log.info("loaded adapter %s onto %s", name, self.name)

    def _unload(self, name: str) -> None:
        if not self._slots.discard(name) or self._batched is None:
            return
        if self._slots:
            self._model.delete_adapter(name)
            self._batched.remove(name)
        else:
            # PEFT cannot delete its last adapter and still run; unloading strips the LoRA layers off the base.
            self._batched.close()
            self._batched = None
            self._base = self._model.unload()
            self._model = self._base
