"""Quantization on SmolLM2-135M-Instruct, all in one run: size against F16, perplexity change of Q8_0 and Q4_K_M on
the quantizer's held-out text, and generated tokens/s of llama.cpp serving Q4_K_M against our transformers backend
(fp32, continuous batching) on the same prompts at 1 and 8 concurrent requests.

Every file comes from the quantizer's own toolchain (llama.cpp's converter, then llama_model_quantize) and every
figure from the code that serves or measures in production: `quality.measure` for perplexity (llama-perplexity's
method, against the F16 GGUF), `LlamaCppBackend` and `TransformersBackend` + `Scheduler` for speed, each fed the same
prompts with the same greedy `max_tokens`. Tokens/s counts the tokens generated (EOS may come early); each speed
figure is the median of --repeats runs.

Targets (issue 16): Q8_0 perplexity change ≤ 1 %, Q4_K_M ≤ 5 %, llama.cpp Q4_K_M ≥ 3× the single-stream tokens/s of
fp32 transformers.

    python bench/quantize.py [--requests 8] [--max-tokens 96] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

PROMPTS = [
    "The history of the printing press begins",
    "A good way to learn a new language is",
    "The three most important things in a garden are",
    "When the train finally arrived at the station,",
    "Photosynthesis is the process by which",
    "The recipe for a simple bread needs",
    "In the year 1900, most people travelled",
    "The best advice I ever received was",
]


async def llama_cpp_speed(path: Path, requests: list[str], concurrency: int, max_tokens: int) -> float:
    from modelops_inference.gguf_engine import LlamaCppBackend
    from modelops_inference.settings import InferenceSettings

    settings = InferenceSettings(inference_max_batch=concurrency, inference_max_queue=len(requests))
    backend = await LlamaCppBackend.load("bench", path, settings)
    try:

        async def one(prompt: str) -> int:
            body = {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0}
            answer = await backend.complete("/v1/completions", body, None, "bench")
            return int(answer["usage"]["completion_tokens"])

        return await _closed_loop(one, requests, concurrency)
    finally:
        await backend.close()


async def transformers_speed(directory: Path, requests: list[str], concurrency: int, max_tokens: int) -> float:
    import torch
    from modelops_inference.backend import TransformersBackend
    from modelops_inference.batching import Scheduler
    from modelops_inference.deployments import Engine, Route
    from modelops_inference.generation import Generation
    from modelops_inference.sampling import SamplingParams

    backend = await TransformersBackend.load("bench", directory, torch.device("cpu"), 1)
    engine = Engine(backend, Scheduler(backend, max_batch=concurrency, max_queue=len(requests)))
    engine.scheduler.start()
    try:

        async def one(prompt: str) -> int:
            ids = backend.tokenizer(prompt)["input_ids"]
            route = Route("bench", "bench", None, None)
            generation = Generation(engine, route, "bench", ids, SamplingParams(max_tokens, temperature=0))
            await generation.start()
            await generation.text()
            return generation.usage.completion_tokens

        return await _closed_loop(one, requests, concurrency)
    finally:
        await engine.close()


async def _closed_loop(one: Any, requests: list[str], concurrency: int) -> float:
    """Tokens/s with `concurrency` requests in flight until every one is answered."""
    queue = list(requests)
    produced = 0

    async def worker() -> None:
        nonlocal produced
        while queue:
            tokens = await one(queue.pop())  # awaited first: `produced += await …` reads `produced` before the await
            produced += tokens

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return produced / (time.perf_counter() - started)


def median_of(repeats: int, measure: Any) -> float:
    return statistics.median(asyncio.run(measure()) for _ in range(repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from modelops_contracts import QuantizationFormat
    from modelops_quantizer import quality, toolchain
    from modelops_trainer.gguf_import import convert, smollm2

    with tempfile.TemporaryDirectory(prefix="bench-quantize-") as scratch:
        root = Path(scratch)
        convert(smollm2().path, root / "hf")
        (root / "F16").mkdir()
        toolchain.convert_model(root / "hf", root / "F16" / "model.gguf")
        files = {"F16": root / "F16" / "model.gguf"}
        for fmt in (QuantizationFormat.Q8_0, QuantizationFormat.Q4_K_M):
            (root / fmt).mkdir()
            toolchain.quantize(files["F16"], root / fmt / "model.gguf", fmt, threads=2)
            files[str(fmt)] = root / fmt / "model.gguf"

        text = quality.heldout_text()
        measured = {
            name: quality.measure(path, text, n_ctx=256, threads=2, speed_tokens=64) for name, path in files.items()
        }
        reference = measured["F16"]
        print(f"SmolLM2-135M-Instruct, held-out text: {reference.scored_tokens} tokens scored (windows of 256)")
        print(f"{'format':8} {'size MB':>8} {'× F16':>6} {'perplexity':>10} {'change':>8}")
        for name, path in files.items():
            size = path.stat().st_size
            change = measured[name].perplexity / reference.perplexity - 1
            ratio = size / files["F16"].stat().st_size
            print(f"{name:8} {size / 1e6:8.1f} {ratio:6.2f} {measured[name].perplexity:10.3f} {change:+8.2%}")

        requests = [PROMPTS[i % len(PROMPTS)] for i in range(args.requests)]
        print(f"\ngenerated tokens/s, {args.requests} requests × {args.max_tokens} tokens, median of {args.repeats}")
        ratios = {}
        for concurrency in (1, 8):
            ours = median_of(
                args.repeats, lambda c=concurrency: transformers_speed(root / "hf", requests, c, args.max_tokens)
            )
            gguf = median_of(
                args.repeats,
                lambda c=concurrency: llama_cpp_speed(root / "Q4_K_M", requests, c, args.max_tokens),
            )
            ratios[concurrency] = gguf / ours
            row = f"  {concurrency} concurrent: transformers fp32 {ours:7.1f}   llama.cpp Q4_K_M {gguf:7.1f}"
            print(f"{row}   {gguf / ours:5.2f}×")

        q8 = measured["Q8_0"].perplexity / reference.perplexity - 1
        q4 = measured["Q4_K_M"].perplexity / reference.perplexity - 1
        print("\ntargets:")
        print(f"  Q8_0 perplexity change {q8:+.2%} (≤ 1 %): {'met' if q8 <= 0.01 else 'MISSED'}")
        print(f"  Q4_K_M perplexity change {q4:+.2%} (≤ 5 %): {'met' if q4 <= 0.05 else 'MISSED'}")
        verdict = "met" if ratios[1] >= 3 else "MISSED"
        print(f"  llama.cpp Q4_K_M single stream {ratios[1]:.2f}× fp32 transformers (≥ 3×): {verdict}")


if __name__ == "__main__":
    main()
