"""What quantization cost, measured with llama.cpp itself on the GGUF that will be served: perplexity on a held-out
text (llama-perplexity's method: windows of `n_ctx` tokens starting with BOS, each scoring the second half of its
tokens, so that every scored token has at least n_ctx/2 of context), and single-stream decoding speed."""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from llama_cpp import Llama

SPEED_PROMPT = "Write a short story about a lighthouse keeper who finds a message in a bottle."
SPEED_RUNS = 3


@dataclass(frozen=True)
class Quality:
    perplexity: float
    scored_tokens: int
    tokens_per_second: float  # decoding, one stream, median of SPEED_RUNS


def heldout_text() -> str:
    """The held-out text: plain English prose written for this purpose, so no model was trained on it."""
    return (files("modelops_quantizer") / "heldout.txt").read_text(encoding="utf-8")


def measure(
    model: Path, text: str, *, n_ctx: int, threads: int, speed_tokens: int, lora: Path | None = None
) -> Quality:
    """Perplexity of `model` (with a GGUF LoRA applied at run time, when given) on `text`, and its decoding speed."""
    from llama_cpp import Llama  # loads the shared library: only where measuring happens

    llm = Llama(
        model_path=str(model),
        lora_path=str(lora) if lora else None,
        n_ctx=n_ctx,
        n_batch=n_ctx,
        logits_all=True,
        n_threads=threads,
        seed=0,
        verbose=False,
    )
    try:
        nll, scored = _negative_log_likelihood(llm, llm.tokenize(text.encode(), add_bos=False), n_ctx)
        speeds = [_decoding_speed(llm, llm.tokenize(SPEED_PROMPT.encode()), speed_tokens) for _ in range(SPEED_RUNS)]
    finally:
        llm.close()
    return Quality(math.exp(nll / scored), scored, statistics.median(speeds))


def _negative_log_likelihood(llm: Llama, tokens: list[int], n_ctx: int) -> tuple[float, int]:
    first = n_ctx // 2
    total, scored = 0.0, 0
    bos = llm.token_bos()
    for start in range(0, len(tokens) - n_ctx + 2, n_ctx - 1):
        window = [bos, *tokens[start : start + n_ctx - 1]]
        if len(window) <= first + 1:
            break
        llm.reset()  # type: ignore[no-untyped-call]
        llm.eval(window)
        logits = np.asarray(llm.scores[first : len(window) - 1], dtype=np.float64)
        log_probs = logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)
        targets = np.asarray(window[first + 1 :])
        total -= float(log_probs[np.arange(len(targets)), targets].sum())
        scored += len(targets)
    if scored == 0:
        raise ValueError(f"the held-out text is shorter than one window of {n_ctx} tokens")
    return total, scored


def _decoding_speed(llm: Llama, prompt: list[int], new_tokens: int) -> float:
    """Tokens/s of greedy decoding after the prompt, EOS ignored so that every model decodes the same count."""
    llm.reset()  # type: ignore[no-untyped-call]
    llm.eval(prompt)
    began = time.perf_counter()
    for _ in range(new_tokens):
        following = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        llm.eval([following])
    return new_tokens / (time.perf_counter() - began)
