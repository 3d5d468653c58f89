"""Continuous batching for one backend: a scheduler task steps every active sequence together, one token per step,
and requests that arrive meanwhile join the running batch between steps."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from transformers import DynamicCache

from . import metrics
from .backend import Backend
from .sampling import SamplingParams, next_token

# How many positions a prefill pass may compute per real prompt token: admitted prompts of lengths further apart are
# prefilled in separate passes.
PADDING_SLACK = 1.25


class QueueFull(Exception):
    """The backend's waiting room is full; the client should retry later."""


@dataclass(frozen=True)
class Finish:
    reason: str  # "stop" (end of sequence or a stop string), "length" (max_tokens), or "error"
    detail: str = ""


@dataclass(eq=False)
class Sequence:
    """One request's generation: the scheduler feeds its `events` with token ids, then one Finish."""

    prompt: list[int]
    adapter: str | None
    params: SamplingParams
    deployment: str
    model: str
    events: asyncio.Queue[int | Finish] = field(default_factory=asyncio.Queue)
    generated: int = 0
    # Set from the event loop (client gone, stop string, adapter revoked); the scheduler drops the row next step.
    aborted: str | None = None
    enqueued_at: float = field(default_factory=time.perf_counter)
    last_token_at: float | None = None


class Scheduler:
    """Owns the batch of one backend; `submit` enqueues, the `run` task admits, steps and delivers.

    The batch keeps one KV cache, left-padded: row i's real tokens are the right-hand end of its mask, and every row's
    position ids count only its real tokens, so padding changes no result. A step is either a prefill of the newly
    admitted sequences (in groups of similar prompt lengths, each left-padded among itself, then padded to the
    batch's length and concatenated onto it) or a decode step of all rows. Finished or aborted rows are dropped from
    the cache, and columns that have become padding in every row are trimmed, so the cache is as long as the longest
    live sequence. Rows of different adapters share every forward pass (the backend applies each row's adapter).
    """

    def __init__(self, backend: Backend, *, max_batch: int, max_queue: int) -> None:
        self.backend = backend
        self.max_batch = max_batch
        self.max_queue = max_queue
        self._pending: deque[Sequence] = deque()
        self._wake = asyncio.Event()
        self._rows: list[Sequence] = []
        self._cache: DynamicCache | None = None
        self._mask = torch.zeros(0, 0, dtype=torch.long)
        self._last = torch.zeros(0, dtype=torch.long)  # each row's newest token, not yet fed to the model
        self._task: asyncio.Task[None] | None = None
        pad = backend.tokenizer.pad_token_id
        self._pad = int(pad if pad is not None else backend.tokenizer.eos_token_id or 0)
        self._eos = backend.tokenizer.eos_token_id

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"scheduler-{self.backend.name}")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for seq in [*self._pending, *self._rows]:
            seq.events.put_nowait(Finish("error", "the model was unloaded"))

    def submit(self, seq: Sequence) -> None:
        if len(self._pending) >= self.max_queue:
            raise QueueFull(f"{len(self._pending)} requests are waiting for {self.backend.name}")
        self._pending.append(seq)
        metrics.QUEUE_DEPTH.labels(self.backend.name).set(len(self._pending))
        self._wake.set()

    def abort(self, adapter: str, reason: str) -> None:
        """Stop every waiting and running sequence of `adapter` (it is being revoked or undeployed)."""
        for seq in [*self._pending, *self._rows]:
            if seq.adapter == adapter and seq.aborted is None:
                seq.aborted = reason
                seq.events.put_nowait(Finish("error", reason))

    @property
    def batch_size(self) -> int:
        return len(self._rows)

    def busy(self) -> bool:
        """Some sequence waits or runs."""
        return bool(self._pending or self._rows)

    async def _run(self) -> None:
        while True:
            if not self._rows and not self._pending:
                self._wake.clear()
                await self._wake.wait()
            admitted: list[Sequence] = []
            while self._pending and len(self._rows) + len(admitted) < self.max_batch:
                seq = self._pending.popleft()
                if seq.aborted is None:
                    admitted.append(seq)
            metrics.QUEUE_DEPTH.labels(self.backend.name).set(len(self._pending))
            try:
                produced = await self.backend.run(functools.partial(self._step, admitted))
            except Exception as error:
                # A failed step poisons the whole batch's cache: fail its sequences rather than the service.
                for seq in [*self._rows, *admitted]:
                    seq.events.put_nowait(Finish("error", f"generation failed: {error}"))
                self._rows, self._cache = [], None
                self._mask, self._last = self._mask[:0, :0], self._last[:0]
                continue
            self._deliver(produced)

    def _deliver(self, produced: list[tuple[Sequence, int | Finish]]) -> None:
        now = time.perf_counter()
        for seq, item in produced:
            if isinstance(item, int):
                labels = (seq.deployment, seq.model)
                if seq.last_token_at is None:
                    metrics.TIME_TO_FIRST_TOKEN.labels(*labels).observe(now - seq.enqueued_at)
                else:
                    metrics.INTER_TOKEN_LATENCY.labels(*labels).observe(now - seq.last_token_at)
                seq.last_token_at = now
                metrics.TOKENS_OUT.labels(*labels).inc()
            seq.events.put_nowait(item)

    def _step(self, admitted: list[Sequence]) -> list[tuple[Sequence, int | Finish]]:
        """One forward pass on the model thread: prefill the admitted sequences if any, else decode every row."""
        self._drop([i for i, seq in enumerate(self._rows) if seq.aborted is not None])
        if admitted:
            admitted.sort(key=lambda seq: len(seq.prompt))
            logits, rows = self._prefill(admitted), admitted
        elif self._rows:
            logits, rows = self._decode(), self._rows
        else:
            return []
        metrics.BATCH_SIZE.labels(self.backend.name).observe(len(rows))
        produced: list[tuple[Sequence, int | Finish]] = []
        done: list[Sequence] = []
        tokens = logits.argmax(-1).tolist()  # greedy rows in one call; sampled rows draw from their own generator
        for i, seq in enumerate(rows):
            if seq.params.temperature > 0:
                tokens[i] = next_token(logits[i], seq.params)
        for seq, token in zip(rows, tokens, strict=True):
            if token == self._eos:
                produced.append((seq, Finish("stop")))
                done.append(seq)
                continue
            seq.generated += 1
            produced.append((seq, token))
            if seq.generated >= seq.params.max_tokens:
                produced.append((seq, Finish("length")))
                done.append(seq)
        start = len(self._rows) - len(rows)
        self._last[start:] = torch.tensor(tokens, dtype=torch.long)
        self._drop([i for i, seq in enumerate(self._rows) if seq in done])
        return produced

    def _prefill(self, admitted: list[Sequence]) -> torch.Tensor:
        """The admitted sequences (sorted by prompt length) prefilled in groups of similar lengths, so that a short
        prompt is not padded to a long one: a forward pass costs about in proportion to the positions it computes."""
        groups: list[list[Sequence]] = []
        for seq in admitted:
            group = groups[-1] if groups else []
            padded = (len(group) + 1) * len(seq.prompt)
            if group and padded <= PADDING_SLACK * sum(len(other.prompt) for other in [*group, seq]):
                group.append(seq)
            else:
                groups.append([seq])
        return torch.cat([self._prefill_group(group) for group in groups])

    def _prefill_group(self, admitted: list[Sequence]) -> torch.Tensor:
        width = max(len(seq.prompt) for seq in admitted)
        ids = torch.full((len(admitted), width), self._pad, dtype=torch.long)
        mask = torch.zeros((len(admitted), width), dtype=torch.long)
        for row, seq in enumerate(admitted):
            ids[row, width - len(seq.prompt) :] = torch.tensor(seq.prompt)
            mask[row, width - len(seq.prompt) :] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        logits, cache = self.backend.forward(ids, mask, positions, None, [seq.adapter for seq in admitted])
        self._join(admitted, cache, mask)
        return logits

    def _join(self, admitted: list[Sequence], cache: DynamicCache, mask: torch.Tensor) -> None:
        if self._cache is None or not self._rows:
            self._cache, self._mask = cache, mask
        else:
            width = max(self._mask.shape[1], mask.shape[1])
            for old, new in zip(_layers(self._cache), _layers(cache), strict=True):
                old.keys = torch.cat([_pad_left(old.keys, width), _pad_left(new.keys, width)])
                old.values = torch.cat([_pad_left(old.values, width), _pad_left(new.values, width)])
            self._mask = torch.cat([_pad_left(self._mask, width, dim=1), _pad_left(mask, width, dim=1)])
        self._rows.extend(admitted)
        self._last = torch.cat([self._last, torch.zeros(len(admitted), dtype=torch.long)])

    def _decode(self) -> torch.Tensor:
        self._mask = torch.cat([self._mask, torch.ones((len(self._rows), 1), dtype=torch.long)], dim=1)
        positions = self._mask.sum(-1, keepdim=True) - 1
        logits, self._cache = self.backend.forward(
            self._last.view(-1, 1), self._mask, positions, self._cache, [seq.adapter for seq in self._rows]
        )
        return logits

    def _drop(self, indices: list[int]) -> None:
        if not indices:
            return
        keep = [i for i in range(len(self._rows)) if i not in set(indices)]
        self._rows = [self._rows[i] for i in keep]
        if not keep or self._cache is None:
            self._rows, self._cache = [], None
            self._mask, self._last = self._mask[:0, :0], self._last[:0]
            return
        index = torch.tensor(keep, dtype=torch.long)
        self._mask, self._last = self._mask[index], self._last[index]
        # Columns that are padding in every remaining row carry nothing: trim them off the cache.
        first = int((self._mask.sum(0) > 0).nonzero()[0])
        self._mask = self._mask[:, first:]
        for layer in _layers(self._cache):
            device_index = index.to(layer.keys.device)
            layer.keys = layer.keys[device_index, :, first:]
            layer.values = layer.values[device_index, :, first:]


def _pad_left(tensor: torch.Tensor, width: int, dim: int = 2) -> torch.Tensor:
    """Zero-pad the sequence dimension on the left to `width` (cache tensors: dim 2; masks: dim 1)."""
    missing = width - tensor.shape[dim]
    if missing == 0:
        return tensor
    pad = [0, 0] * (tensor.dim() - 1 - dim) + [missing, 0]
    return F.pad(tensor, pad)


def _layers(cache: DynamicCache) -> list[Any]:
    """The cache's per-layer key/value holders (full-attention layers: the only kind this batcher supports)."""
    return list(cache.layers)
