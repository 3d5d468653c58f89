"""Inference throughput: generated tokens/s of the continuous-batching scheduler at 1, 4 and 16 concurrent requests,
against sequential unbatched generation through the same backend, and mixed-adapter against single-adapter batches,
all measured in the same run on the tiny Llama (7.5M) with two random-weight LoRA adapters.

Every side generates greedily from the same prompts with the same max_tokens, through the real serving path
(`Generation` → `Scheduler` → `TransformersBackend`, detokenization included), in process. Concurrency c keeps c
requests in flight (a closed loop) until every prompt is answered. Plain `PeftModel.generate`, one request at a
time, is a second sequential reference. Tokens/s counts the tokens actually generated (end of sequence may come
before max_tokens); each figure is the fastest of --repeats runs; a check compares every batched completion with
its sequential one.

    python bench/inference.py [--requests 48] [--max-tokens 32] [--device auto] [--repeats 2]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

ADAPTERS = ("lora-1", "lora-2")


def make_adapter(
    base: Path,
    target: Path,
    seed: int,
    r: int = 8,
    modules: tuple[str, ...] = ("q_proj", "v_proj", "o_proj", "down_proj"),
) -> None:
    """A LoRA adapter with random (non-zero) weights, as the inference tests make them."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    config = LoraConfig(r=r, target_modules=list(modules), init_lora_weights=False)
    get_peft_model(AutoModelForCausalLM.from_pretrained(base), config).save_pretrained(target)


def prompts(count: int) -> list[str]:
    from modelops_trainer.corpus import sentences

    text = list(sentences(7, count=count))
    return [text[i] for i in range(count)]


class Served:
    """One backend and its scheduler, driven as the HTTP handlers drive them."""

    def __init__(self, backend: Any, root: Path, max_batch: int) -> None:
        from modelops_inference.batching import Scheduler
        from modelops_inference.deployments import Engine

        self.backend = backend
        self.root = root
        self.engine = Engine(backend, Scheduler(backend, max_batch=max_batch, max_queue=1024))
        self.engine.scheduler.start()

    async def complete(self, prompt: str, adapter: str, max_tokens: int) -> tuple[str, int]:
        from modelops_inference.deployments import Route
        from modelops_inference.generation import Generation
        from modelops_inference.sampling import SamplingParams

        route = Route("bench", "base", adapter, self.root / adapter)
        ids = self.backend.tokenizer(prompt)["input_ids"]
        generation = Generation(self.engine, route, adapter, ids, SamplingParams(max_tokens, temperature=0))
        await generation.start()
        text = await generation.text()
        return text, generation.usage.completion_tokens

    async def best(
        self, jobs: list[tuple[str, str]], concurrency: int, max_tokens: int, repeats: int
    ) -> tuple[float, list[str], int]:
        """`run` `repeats` times; the fastest (CPUs shared with other work make single runs noisy)."""
        runs = [await self.run(jobs, concurrency, max_tokens) for _ in range(repeats)]
        return max(runs, key=lambda run: run[0])

    async def run(self, jobs: list[tuple[str, str]], concurrency: int, max_tokens: int) -> tuple[float, list[str], int]:
        """Answer every (prompt, adapter) with `concurrency` in flight; (tokens/s, texts in order, tokens)."""
        texts = [""] * len(jobs)
        counts = [0] * len(jobs)
        queue = iter(range(len(jobs)))

        async def worker() -> None:
            for i in queue:
                texts[i], counts[i] = await self.complete(*jobs[i], max_tokens)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
        return sum(counts) / elapsed, texts, sum(counts)

    async def close(self) -> None:
        await self.engine.scheduler.stop()
        await self.backend.close()


def plain_generate(root: Path, jobs: list[tuple[str, str]], max_tokens: int, device: Any, repeats: int) -> float:
    """Sequential `PeftModel.generate`, one request at a time (adapter switched with set_adapter); tokens/s."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(root / "base")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    base = AutoModelForCausalLM.from_pretrained(root / "base", dtype=dtype).to(device)
    model: Any = PeftModel.from_pretrained(base, str(root / ADAPTERS[0]), adapter_name=ADAPTERS[0])
    for name in ADAPTERS[1:]:
        model.load_adapter(str(root / name), adapter_name=name)
    model.eval()

    def one(prompt: str, adapter: str) -> int:
        model.set_adapter(adapter)
        ids = tokenizer(prompt, return_tensors="pt").to(device)
        with torch.inference_mode():
            out = model.generate(**ids, max_new_tokens=max_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        return int(out.shape[1] - ids["input_ids"].shape[1])

    one(*jobs[0])  # warm-up
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        tokens = sum(one(*job) for job in jobs)
        rates.append(tokens / (time.perf_counter() - start))
    return max(rates)


async def bench(root: Path, args: argparse.Namespace) -> None:
    from modelops_inference.backend import TransformersBackend, pick_device

    device = pick_device(args.device)
    backend = await TransformersBackend.load("base", root / "base", device, max_adapters=len(ADAPTERS))
    served = Served(backend, root, max_batch=args.max_batch)
    texts = prompts(args.requests)
    single = [(p, ADAPTERS[0]) for p in texts]
    mixed = [(p, ADAPTERS[i % len(ADAPTERS)]) for i, p in enumerate(texts)]
    try:
        await served.run(mixed[:8], 8, args.max_tokens)  # warm-up: loads both adapters, first kernels
        rows: list[tuple[str, float, int]] = []
        seq_tps, seq_single, tokens = await served.best(single, 1, args.max_tokens, args.repeats)
        rows.append(("sequential (1 at a time), single adapter", seq_tps, tokens))
        seq_mixed_tps, seq_mixed, tokens = await served.best(mixed, 1, args.max_tokens, args.repeats)
        rows.append(("sequential (1 at a time), mixed adapters", seq_mixed_tps, tokens))
        results: dict[tuple[str, int], float] = {}
        mismatches = 0
        for concurrency in (1, 4, 16):
            for kind, jobs, reference in (("single", single, seq_single), ("mixed", mixed, seq_mixed)):
                if concurrency == 1:
                    results[(kind, 1)] = seq_tps if kind == "single" else seq_mixed_tps
                    continue
                tps, out, tokens = await served.best(jobs, concurrency, args.max_tokens, args.repeats)
                results[(kind, concurrency)] = tps
                mismatches += sum(a != b for a, b in zip(out, reference, strict=True))
                rows.append(
                    (f"batched, {concurrency:2} concurrent, {kind} adapter{'s' * (kind == 'mixed')}", tps, tokens)
                )
    finally:
        await served.close()
    plain = plain_generate(root, single, args.max_tokens, device, args.repeats) if args.plain else None
    if plain is not None:
        rows.insert(2, ("plain PeftModel.generate, sequential", plain, 0))

    print(
        f"inference: tiny Llama (7.5M) + 2 LoRA r=8 adapters, {args.requests} requests × max_tokens "
        f"{args.max_tokens}, greedy, {device.type}, best of {args.repeats}"
    )
    for label, tps, tokens in rows:
        print(f"  {label:46} {tps:9.0f} tokens/s" + (f"   ({tokens} tokens)" if tokens else ""))
    print("  ratios against sequential generation through the same backend (same adapters):")
    for concurrency in (4, 16):
        for kind in ("single", "mixed"):
            ratio = results[(kind, concurrency)] / results[(kind, 1)]
            target = "  (target ≥ 3×)" if concurrency == 16 else ""
            print(f"    {concurrency:2} concurrent, {kind:6}  {ratio:5.2f}×{target}")
    if plain is not None:
        print(f"    16 concurrent, single vs plain generate  {results[('single', 16)] / plain:5.2f}×")
    for concurrency in (4, 16):
        overhead = results[("single", concurrency)] / results[("mixed", concurrency)] - 1
        target = " (target ≤ 30%)" if concurrency == 16 else ""
        print(f"  mixed-adapter overhead at {concurrency:2} concurrent: {overhead * 100:+.1f}%{target}")
    print(f"  batched completions differing from their sequential one: {mismatches}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=48, help="prompts per side")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--max-batch", type=int, default=16)
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto")
    parser.add_argument("--repeats", type=int, default=2, help="runs per figure; the fastest counts")
    parser.add_argument("--no-plain", dest="plain", action="store_false", help="skip the PeftModel.generate reference")
    args = parser.parse_args()

    from modelops_trainer.base_model import build_base_model

    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        build_base_model(root / "base", 0)
        for seed, name in enumerate(ADAPTERS, start=1):
            make_adapter(root / "base", root / name, seed)
        asyncio.run(bench(root, args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
