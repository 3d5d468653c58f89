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
from .lora_batch import LayerAdapter, LoraStacks, read_stackable

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
    """A transformers causal LM with LoRA adapters; requests for different adapters share one forward pass, each
    row's adapter applied from the stacks of lora_batch.py (or by PEFT, for an adapter that cannot be stacked)."""

    def __init__(self, name: str, path: Path, device: torch.device, max_adapters: int) -> None:
        self.name = name
        self.device = device
        self.tokenizer: PreTrainedTokenizerBase = AutoTokenizer.from_pretrained(path)
        # bf16 halves memory and uses tensor cores on GPUs; CPUs compute it slowly, so they stay in fp32.
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        with _LOADING:
            loaded: Any = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
        self._base = loaded.to(device).eval()
        self._stacks = LoraStacks(self._base)  # LoRA and DoRA adapters
        self._peft: set[str] = set()  # adapters PEFT runs, the others
        self._model: Any = self._base  # a PeftModel while PEFT holds an adapter
        self._peft_layers_on = True
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
        """The forward pass's adapter set-up, and its extra arguments: stacked adapters' rows through the stacks,
        the rows of adapters PEFT holds through PEFT (its active adapter when it is every row's, else its mixed batch,
        `adapter_names`), and PEFT's layers switched off while no row needs them."""
        peft_rows = [name if name in self._peft else None for name in adapters]
        with self._stacks.rows([name if name in self._stacks else None for name in adapters]):
            yield self._peft_arguments(peft_rows)

    def _peft_arguments(self, rows: list[str | None]) -> dict[str, Any]:
        names = set(rows)
        if self._peft and self._peft_layers_on != (names != {None}):  # PEFT's switch walks the model: on a change only
            self._peft_layers_on = not self._peft_layers_on
            tuner = self._model.base_model
            tuner.enable_adapter_layers() if self._peft_layers_on else tuner.disable_adapter_layers()
        if names == {None}:
            return {}
        if len(names) == 1:
            (name,) = names
            if self._model.active_adapter != name:
                self._model.set_adapter(name)
            return {}
        return {"adapter_names": [name or BASE_ROW for name in rows]}

    async def acquire_adapter(self, name: str, path: Path) -> None:
        """Load `name` unless loaded (evicting the least recently used idle adapter beyond the budget) and hold it
        until `release_adapter`, so it cannot be evicted while a request uses it."""
        self._slots.hold(name)
        try:
            # Reading the files needs no model state: off the model thread, which goes on decoding meanwhile.
            read = name not in self._slots.names()
            layers = await asyncio.to_thread(read_stackable, path, self._stacks.linears) if read else None
            await self.run(lambda: self._ensure_loaded(name, path, layers, read=read))
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

    def _ensure_loaded(self, name: str, path: Path, layers: dict[str, LayerAdapter] | None, *, read: bool) -> None:
        """Load `name` from `path` unless loaded: into the stacks (`layers`, when `read` beforehand; None: it cannot be
        stacked), else through PEFT."""
        if self._slots.touch(name):
            return
        for idle in self._slots.to_evict():
            log.info("evicting adapter %s from %s (least recently used)", idle, self.name)
            self._unload(idle)
        if not read:  # it was loaded when asked for, and has been removed since
            layers = read_stackable(path, self._stacks.linears)
        if layers is not None:
            self._stacks.add(name, layers)
        else:
            with _LOADING:
                if self._peft:
                    self._model.load_adapter(str(path), adapter_name=name)
                else:
                    self._model = PeftModel.from_pretrained(self._base, str(path), adapter_name=name)
            self._peft.add(name)
            self._peft_layers_on = True  # a new adapter's layers come switched on
        self._slots.add(name, path)
        log.info("loaded adapter %s onto %s%s", name, self.name, "" if layers is not None else " (through PEFT)")

    def _unload(self, name: str) -> None:
        if not self._slots.discard(name):
            return
        if name in self._stacks:
            self._stacks.remove(name)
            return
        self._peft.discard(name)
        if self._peft:
            self._model.delete_adapter(name)
        else:
            # PEFT cannot delete its last adapter and still run; unloading strips its layers off the base (the
            # stacks' hooks stay on the base's own linear layers).
            self._base = self._model.unload()
            self._model = self._base
