"""Cold start of an idle-unloaded deployment, on SmolLM2-135M-Instruct (the bundled GGUF, converted): the first
request's time to first token once inference has unloaded the base model for idleness — the model loaded again and
a scheduler started, as `Deployments.engine_for` does, then one token generated — against the same request on the
loaded model (warm), and against what a user without the service runs: `AutoModelForCausalLM.from_pretrained` and
`generate` one token. Medians of --repeats, each cold start in a fresh backend (the operating system's file cache
stays warm, as it does on a replica that unloaded a model it had served).

    python bench/cold_start.py [--repeats 3] [--device auto]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

PROMPT = "The capital of France is"


async def first_token_s(engine: Any, prompt_ids: list[int]) -> float:
    """Time to the first generated token of one greedy request through the serving path."""
    from modelops_inference.deployments import Route
    from modelops_inference.generation import Generation
    from modelops_inference.sampling import SamplingParams

    began = time.perf_counter()
    route = Route("bench", "base", None, None)
    generation = Generation(engine, route, "bench", prompt_ids, SamplingParams(1, temperature=0.0))
    await generation.start()
    await generation.text()
    return time.perf_counter() - began


async def cold_start_s(model_dir: Path, device: Any) -> tuple[float, float]:
    """(cold: load + first token, warm: first token on the loaded model) for one fresh backend."""
    from modelops_inference.backend import TransformersBackend
    from modelops_inference.batching import Scheduler
    from modelops_inference.deployments import Engine

    began = time.perf_counter()
    backend = await TransformersBackend.load("base", model_dir, device, 4)
    scheduler = Scheduler(backend, max_batch=8, max_queue=64)
    scheduler.start()
    engine = Engine(backend, scheduler)
    ids = backend.tokenizer(PROMPT)["input_ids"]
    await first_token_s(engine, ids)
    cold = time.perf_counter() - began
    warm = statistics.median([await first_token_s(engine, ids) for _ in range(3)])
    await engine.close()
    return cold, warm


def plain_transformers_s(model_dir: Path) -> float:
    """A user's own first token: load with transformers, tokenize, generate one token."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    began = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    with torch.inference_mode():
        model.generate(**tokenizer(PROMPT, return_tensors="pt"), max_new_tokens=1, do_sample=False)
    return time.perf_counter() - began


async def main(args: argparse.Namespace) -> None:
    from modelops_inference.backend import pick_device
    from modelops_trainer.gguf_import import convert, smollm2

    device = pick_device(args.device)
    with tempfile.TemporaryDirectory(prefix="bench-cold-start-") as scratch:
        model_dir = Path(scratch)
        await asyncio.to_thread(convert, smollm2().path, model_dir)
        plain_transformers_s(model_dir)  # one untimed load: every side then reads the files from the page cache
        runs = [await cold_start_s(model_dir, device) for _ in range(args.repeats)]
        plain = [await asyncio.to_thread(plain_transformers_s, model_dir) for _ in range(args.repeats)]
    cold = statistics.median(run[0] for run in runs)
    warm = statistics.median(run[1] for run in runs)
    baseline = statistics.median(plain)
    print(f"cold start benchmark: SmolLM2-135M-Instruct on {device}, medians of {args.repeats} runs")
    print(f"  warm request, time to first token:            {warm * 1000:8.1f} ms")
    print(f"  cold start (reload after idle + first token): {cold * 1000:8.1f} ms  ({cold / warm:.0f}x warm)")
    print(f"  baseline, transformers load + generate 1:     {baseline * 1000:8.1f} ms")
    print(f"  ratio cold start / baseline:                  {cold / baseline:8.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto")
    asyncio.run(main(parser.parse_args()))
