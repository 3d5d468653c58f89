"""Inference throughput of the continuous-batching scheduler against batched Hugging Face `generate`, in one run.

Ours: the real serving path (`Generation` → `Scheduler` → `TransformersBackend`, detokenization included), in
process, with 16 requests in flight (a closed loop) until every prompt is answered. The baseline is what a user would
write instead: `PeftModel.generate` on left-padded batches of 16 in arrival order, the adapters of a batch passed as
PEFT's mixed `adapter_names` (one adapter: `set_adapter`). A batch generates until its longest request is done, so
with mixed output lengths its short requests wait; only the tokens each request asked for count.

    uniform   48 corpus prompts, 32 tokens each
    mixed     48 prompts of 1-8 corpus sentences, 8-96 tokens each (seeded)
    adapters  the uniform workload over 2, 8 and 32 adapters (round robin); ours holds 16 at once (the LRU budget),
              so at 32 it loads and evicts as it goes; the baseline holds them all

SmolLM2-135M-Instruct (the bundled GGUF, converted; `--model tiny`: the 7.5M test Llama, where per-step Python costs
weigh far more) with random-weight LoRA r=8 adapters, greedy. Each figure is the median (min-max) of --repeats
runs, the sides interleaved. Also: how many uniform completions differ from the baseline's, and the cold-load time
of an adapter (median of 8).

    python bench/inference.py [--model smollm2|tiny] [--requests 48] [--repeats 3] [--device auto]

Targets (issue 23): ≥ 1.0× the baseline on uniform lengths, ≥ 1.5× on mixed; 32 adapters keep ≥ 80% of one
adapter's tokens/s.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from figures import spread

BATCH = 16
LRU_BUDGET = 16  # at least the requests in flight: each holds its adapter until it ends
ADAPTER_COUNTS = (2, 8, 32)  # beside uniform's one

Job = tuple[str, str, int]  # prompt, adapter, max_tokens
MODELS = {"smollm2": "SmolLM2-135M-Instruct", "tiny": "tiny Llama (7.5M)"}


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


def adapter_name(i: int) -> str:
    return f"lora-{i + 1}"


def uniform_jobs(count: int, adapters: int) -> list[Job]:
    from modelops_trainer.corpus import sentences

    return [(text, adapter_name(i % adapters), 32) for i, text in enumerate(sentences(7, count=count))]


def mixed_jobs(count: int) -> list[Job]:
    from modelops_trainer.corpus import sentences

    rng = random.Random(23)
    pool = list(sentences(11, count=count * 8))
    return [(" ".join(rng.sample(pool, rng.randint(1, 8))), adapter_name(0), rng.randint(8, 96)) for _ in range(count)]


class Served:
    """One backend and its scheduler, driven as the HTTP handlers drive them."""

    def __init__(self, backend: Any, root: Path) -> None:
        from modelops_inference.batching import Scheduler
        from modelops_inference.deployments import Engine

        self.backend = backend
        self.root = root
        self.engine = Engine(backend, Scheduler(backend, max_batch=BATCH, max_queue=1024))
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

    async def run(self, jobs: list[Job]) -> tuple[float, list[str]]:
        """Answer every job with BATCH in flight; (tokens/s, texts in order)."""
        texts = [""] * len(jobs)
        counts = [0] * len(jobs)
        queue = iter(range(len(jobs)))

        async def worker() -> None:
            for i in queue:
                texts[i], counts[i] = await self.complete(*jobs[i])

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(BATCH)))
        return sum(counts) / (time.perf_counter() - start), texts

    async def cold_load_ms(self, names: list[str]) -> float:
        """Median time to load an adapter that is not loaded (each load evicts an idle one past the budget)."""
        times = []
        for name in names:
            start = time.perf_counter()
            await self.backend.acquire_adapter(name, self.root / name)
            times.append((time.perf_counter() - start) * 1000)
            self.backend.release_adapter(name)
        return statistics.median(times)

    async def close(self) -> None:
        await self.engine.scheduler.stop()
        await self.backend.close()


class BatchedGenerate:
    """The baseline: `generate` on left-padded batches of BATCH, mixed adapters through `adapter_names`."""

    def __init__(self, root: Path, adapters: int, device: Any) -> None:
        import torch
        from peft import PeftModel
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.device = device
        self.tokenizer = AutoTokenizer.from_pretrained(root / "base", padding_side="left")
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        base = AutoModelForCausalLM.from_pretrained(root / "base", dtype=dtype).to(device)
        model: Any = PeftModel.from_pretrained(base, str(root / adapter_name(0)), adapter_name=adapter_name(0))
        for i in range(1, adapters):
            model.load_adapter(str(root / adapter_name(i)), adapter_name=adapter_name(i))
        self.model = model.eval()

    def run(self, jobs: list[Job]) -> tuple[float, list[str]]:
        import torch

        texts = []
        tokens = 0
        start = time.perf_counter()
        for first in range(0, len(jobs), BATCH):
            batch = jobs[first : first + BATCH]
            names = [adapter for _, adapter, _ in batch]
            extra: dict[str, Any] = {}
            if len(set(names)) == 1:
                self.model.set_adapter(names[0])
            else:
                extra["adapter_names"] = names
            inputs = self.tokenizer([prompt for prompt, _, _ in batch], return_tensors="pt", padding=True)
            with torch.inference_mode():
                out = self.model.generate(
                    **inputs.to(self.device),
                    max_new_tokens=max(max_tokens for _, _, max_tokens in batch),
                    do_sample=False,
                    pad_token_id=self.tokenizer.pad_token_id,
                    **extra,
                )
            for row, (_, _, max_tokens) in zip(out[:, inputs["input_ids"].shape[1] :], batch, strict=True):
                wanted = _until_eos(row.tolist()[:max_tokens], self.tokenizer.eos_token_id)
                tokens += len(wanted)
                texts.append(self.tokenizer.decode(wanted, skip_special_tokens=True))
        return tokens / (time.perf_counter() - start), texts


def _adapters_label(count: int) -> str:
    return f"{count} adapters"


def _until_eos(ids: list[int], eos: int | None) -> list[int]:
    return ids[: ids.index(eos)] if eos in ids else ids


async def bench(root: Path, args: argparse.Namespace) -> None:
    from modelops_inference.backend import TransformersBackend, pick_device

    device = pick_device(args.device)
    backend = await TransformersBackend.load("base", root / "base", device, max_adapters=LRU_BUDGET)
    served = Served(backend, root)
    workloads: dict[str, list[Job]] = {"uniform": uniform_jobs(args.requests, 1), "mixed": mixed_jobs(args.requests)}
    workloads |= {_adapters_label(n): uniform_jobs(args.requests, n) for n in ADAPTER_COUNTS}
    baselines = {n: BatchedGenerate(root, n, device) for n in (1, *ADAPTER_COUNTS)}
    ours: dict[str, list[float]] = {name: [] for name in workloads}
    theirs: dict[str, list[float]] = {name: [] for name in workloads}
    differing = 0
    try:
        warm_up = workloads[_adapters_label(2)][:BATCH]  # first kernels, two adapters loaded
        await served.run(warm_up)
        await backend.run(functools.partial(baselines[2].run, warm_up))
        for _ in range(args.repeats):
            for name, jobs in workloads.items():
                adapters = int(name.split()[0]) if "adapter" in name else 1
                rate, our_texts = await served.run(jobs)
                ours[name].append(rate)
                # On the model thread too: torch's intra-op pool, driven from two threads in turn, slows both.
                rate, their_texts = await backend.run(functools.partial(baselines[adapters].run, jobs))
                theirs[name].append(rate)
                if name == "uniform":
                    differing = sum(a != b for a, b in zip(our_texts, their_texts, strict=True))
        cold = await served.cold_load_ms([adapter_name(i) for i in range(ADAPTER_COUNTS[-1], ADAPTER_COUNTS[-1] + 8)])
    finally:
        await served.close()

    def median(figures: dict[str, list[float]], name: str) -> float:
        return statistics.median(figures[name])

    def versus(name: str) -> float:
        return median(ours, name) / median(theirs, name)

    print(
        f"inference: {MODELS[args.model]}, LoRA r=8, {args.requests} requests, {BATCH} in flight / batches of {BATCH},"
        f" greedy, {device.type}; medians of {args.repeats} runs (min-max), tokens/s"
    )
    print(f"  {'workload':12} {'ours':>18} {'batched generate':>20} {'ratio':>7}")
    for name in workloads:
        print(f"  {name:12} {spread(ours[name], 0, 6):>18} {spread(theirs[name], 0, 6):>20} {versus(name):6.2f}×")
    print(f"  ratio ours / batched generate, uniform lengths: {versus('uniform'):.2f}× (target ≥ 1.0×)")
    print(f"  ratio ours / batched generate, mixed lengths:   {versus('mixed'):.2f}× (target ≥ 1.5×)")
    for n in ADAPTER_COUNTS:
        kept = median(ours, _adapters_label(n)) / median(ours, "uniform")
        baseline_kept = median(theirs, _adapters_label(n)) / median(theirs, "uniform")
        budget = f", beyond the LRU budget of {LRU_BUDGET}" if n > LRU_BUDGET else ""
        print(f"  {n:2} adapters keep {kept:4.0%} of one adapter's tokens/s (generate: {baseline_kept:4.0%}){budget}")
    print(f"  adapter cold load (evicting the least recently used): {cold:.1f} ms (median of 8)")
    print(f"  uniform completions differing from batched generate's: {differing} of {args.requests}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=48, help="prompts per workload")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto")
    parser.add_argument("--model", choices=tuple(MODELS), default="smollm2")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from modelops_trainer.base_model import build_base_model
    from modelops_trainer.gguf_import import convert, smollm2

    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        if args.model == "smollm2":
            convert(smollm2().path, root / "base")
        else:
            build_base_model(root / "base", 0)
        for i in range(ADAPTER_COUNTS[-1] + 8):  # 8 never served: their loads are timed cold
            make_adapter(root / "base", root / adapter_name(i), seed=i + 1)
        asyncio.run(bench(root, args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
