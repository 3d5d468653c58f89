"""One request's generation as text: submit to the scheduler, detokenize incrementally, cut at stop strings, count
usage, and always give the batch row and the adapter back (also when the client goes away mid-stream)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from transformers import PreTrainedTokenizerBase

from . import metrics
from .batching import Finish, Sequence
from .deployments import Engine, Route
from .sampling import SamplingParams


class GenerationFailed(Exception):
    """The sequence was aborted (adapter revoked, model unloaded) or its batch step failed."""


@dataclass
class Usage:
    prompt_tokens: int
    completion_tokens: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }


class Generation:
    """Iterate `deltas()` for text pieces; `finish_reason` and `usage` hold once it is exhausted."""

    def __init__(self, engine: Engine, route: Route, model: str, prompt: list[int], params: SamplingParams) -> None:
        self.engine = engine
        self.route = route
        self.tokenizer: PreTrainedTokenizerBase = engine.backend.tokenizer
        self.seq = Sequence(prompt, route.adapter_id, params, route.deployment, model)
        self.usage = Usage(prompt_tokens=len(prompt))
        self.finish_reason = "stop"

    async def start(self) -> None:
        """Load (or touch) the adapter and join the queue; raises QueueFull or AdapterBudgetExceeded."""
        if self.route.adapter_id and self.route.adapter_path:
            await self.engine.backend.acquire_adapter(self.route.adapter_id, self.route.adapter_path)
        try:
            self.engine.scheduler.submit(self.seq)
        except BaseException:
            self._release()
            raise
        metrics.TOKENS_IN.labels(self.seq.deployment, self.seq.model).inc(len(self.seq.prompt))

    async def deltas(self) -> AsyncIterator[str]:
        stops = self.seq.params.stop
        # Text that could still turn out to begin a stop string is held back until it cannot.
        hold = max((len(s) for s in stops), default=1) - 1
        tokens: list[int] = []
        sent = 0
        try:
            while True:
                item = await self.seq.events.get()
                if isinstance(item, Finish):
                    if item.reason == "error":
                        raise GenerationFailed(item.detail)
                    self.finish_reason = item.reason
                    text = self._text(tokens)
                    if len(text) > sent:
                        yield text[sent:]
                    return
                tokens.append(item)
                self.usage.completion_tokens = len(tokens)
                text = self._text(tokens)
                cut = min((i for i in (text.find(s, max(sent - hold, 0)) for s in stops) if i >= 0), default=-1)
                if cut >= 0:
                    self.finish_reason = "stop"
                    self.seq.aborted = "stop string"
                    if cut > sent:
                        yield text[sent:cut]
                    return
                # A trailing U+FFFD is a multi-byte character still incomplete: wait for its other tokens.
                safe = len(text) - hold if not text.endswith("\ufffd") else len(text.rstrip("\ufffd")) - hold
                if safe > sent:
                    yield text[sent:safe]
                    sent = safe
        finally:
            # Marks a row still in the batch (stop string, client gone) for the scheduler to drop at its next step.
            self.seq.aborted = self.seq.aborted or "finished"
            self._release()

    async def text(self) -> str:
        return "".join([delta async for delta in self.deltas()])

    def _text(self, tokens: list[int]) -> str:
        return str(self.tokenizer.decode(tokens, skip_special_tokens=True))

    def _release(self) -> None:
        if self.route.adapter_id:
            self.engine.backend.release_adapter(self.route.adapter_id)
