"""Streaming latency under open-loop Poisson arrivals: time to first token (TTFT) and inter-token latency (ITL), p50
and p99, at three arrival rates, against sequential `generate` with a streamer on the same arrival trace, in one run.

Ours: the real serving path in process (`Generation` → `Scheduler` → `TransformersBackend`, up to 16 sequences in a
batch), each request streamed through `Generation.deltas()` as the API's SSE stream consumes it. A token is stamped
when the stream takes it off its sequence's event queue (after the scheduler's step delivered it, before its own
detokenization). The baseline is what a user without the service runs: one `generate` at a time in arrival order
(FIFO), greedy, its tokens stamped by a `BaseStreamer` as `generate` emits them (no detokenization), on the same
model thread.

Requests arrive open loop: exponential gaps (seeded per repeat; every rate of a repeat is the same trace stretched,
and both sides get the same trace), each request submitted at its arrival time whatever is still running. TTFT =
first token - arrival (queueing included), over the run's requests (with 24, p99 is close to the worst); ITL = the
gaps between a request's successive tokens, pooled over the run; tokens/s = the run's generated tokens over its span
(first arrival to last token). The workload is bench/inference.py's mixed one (prompts of 1-8 corpus sentences, 8-96
tokens each, seeded), on the base model, greedy. Unless --rates is given, the rates are 25%, 50% and 80% of the
capacity measured first: 16 requests always in flight for --capacity-s, tokens/s over the workload's mean length.
Each figure is the median (min-max) of --repeats runs. By default generate runs at the lowest rate only: it answers
one request at a time, so at any rate near its own capacity its run lasts requests × its service time, and three
rates of it would take the benchmark past 5 minutes on 2 cores.

    python bench/latency.py [--requests 24] [--repeats 3] [--rates 0.5,1,1.5] [--baseline lowest|all|none]
                            [--capacity-s 15] [--device auto] [--model smollm2|tiny|PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import itertools
import random
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from figures import spread
from inference import mixed_jobs

BATCH = 16
FRACTIONS = (0.25, 0.5, 0.8)  # of the measured capacity, when --rates is not given
LEAD_S = 0.05  # a trace's first arrival comes this long after it is laid out
FIGURES = ("ttft_p50", "ttft_p99", "itl_p50", "itl_p99", "tokens_s")
WIDTHS = (19, 19, 15, 17, 15)  # the table's columns, one per figure

Job = tuple[list[int], int]  # prompt ids, max_tokens


@dataclass
class Request:
    arrival: float
    stamps: list[float] = field(default_factory=list)  # one per generated token (end of sequence not counted)
    tokens: list[int] = field(default_factory=list)


def _percentile(samples: list[float], q: int) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1] if len(samples) > 1 else samples[0]


def arrivals(count: int, rate: float, seed: int) -> list[float]:
    """Poisson arrival offsets (s) at `rate` requests/s, the first at 0: the seed's unit-rate gaps scaled by 1/rate,
    so every rate of a repeat is the same trace stretched."""
    rng = random.Random(seed)
    offsets, at = [], 0.0
    for _ in range(count):
        offsets.append(at)
        at += rng.expovariate(1.0) / rate
    return offsets


def figures(requests: list[Request]) -> dict[str, float]:
    """TTFT and ITL percentiles (ms) and tokens/s of one run."""
    answered = [r for r in requests if r.stamps]
    ttft = [(r.stamps[0] - r.arrival) * 1000 for r in answered]
    itl = [(b - a) * 1000 for r in answered for a, b in itertools.pairwise(r.stamps)]
    span = max(r.stamps[-1] for r in answered) - min(r.arrival for r in requests)
    return {
        "ttft_p50": statistics.median(ttft),
        "ttft_p99": _percentile(ttft, 99),
        "itl_p50": statistics.median(itl) if itl else 0.0,
        "itl_p99": _percentile(itl, 99) if itl else 0.0,
        "tokens_s": sum(len(r.stamps) for r in answered) / span,
    }


class StampedEvents(asyncio.Queue[Any]):
    """A sequence's event queue that stamps each token as the stream takes it."""

    def __init__(self, request: Request) -> None:
        super().__init__()
        self.request = request

    async def get(self) -> Any:
        item = await super().get()
        if isinstance(item, int):
            self.request.stamps.append(time.perf_counter())
            self.request.tokens.append(item)
        return item


class Served:
    """One backend and its scheduler, driven as the HTTP handlers drive them."""

    def __init__(self, backend: Any) -> None:
        from modelops_inference.batching import Scheduler
        from modelops_inference.deployments import Engine

        self.backend = backend
        self.engine = Engine(backend, Scheduler(backend, max_batch=BATCH, max_queue=1024))
        self.engine.scheduler.start()

    async def stream(self, job: Job, request: Request) -> Request:
        """One greedy request, streamed to its end as the API streams it; its tokens stamped into `request`."""
        from modelops_inference.deployments import Route
        from modelops_inference.generation import Generation
        from modelops_inference.sampling import SamplingParams

        ids, max_tokens = job
        generation = Generation(
            self.engine, Route("bench", "base", None, None), "bench", ids, SamplingParams(max_tokens, temperature=0)
        )
        generation.seq.events = StampedEvents(request)
        await generation.start()
        async for _ in generation.deltas():
            pass
        return request

    async def open_loop(self, jobs: list[Job], offsets: list[float]) -> list[Request]:
        """Submit each job at its arrival time, whatever is still running; wait for every answer."""
        start = time.perf_counter() + LEAD_S
        tasks = []
        for job, offset in zip(jobs, offsets, strict=True):
            delay = start + offset - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(self.stream(job, Request(start + offset))))
        return list(await asyncio.gather(*tasks))

    async def capacity(self, jobs: list[Job], seconds: float) -> tuple[float, float]:
        """(tokens/s, requests/s) with BATCH always in flight for `seconds`: workers cycle through the jobs, each
        taking the next as soon as its last is answered, and are cancelled at the end. Requests/s is tokens/s over the
        jobs' mean length (a job's generated length where it completed in the window, else its max_tokens)."""
        lengths = {i: max_tokens for i, (_, max_tokens) in enumerate(jobs)}
        requests: list[Request] = []
        order = itertools.cycle(range(len(jobs)))

        async def worker() -> None:
            for i in order:
                requests.append(request := Request(time.perf_counter()))
                await self.stream(jobs[i], request)
                lengths[i] = len(request.tokens)

        start = time.perf_counter()
        workers = [asyncio.create_task(worker()) for _ in range(BATCH)]
        await asyncio.sleep(seconds)
        end = time.perf_counter()
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        while self.engine.scheduler.busy():  # the cancelled rows leave at the scheduler's next step
            await asyncio.sleep(0.01)
        tokens_s = sum(stamp <= end for request in requests for stamp in request.stamps) / (end - start)
        return tokens_s, tokens_s / statistics.mean(lengths.values())

    async def close(self) -> None:
        await self.engine.close()


class SequentialGenerate:
    """The baseline: `generate` on one request at a time, in arrival order, with a streamer stamping its tokens."""

    def __init__(self, model_dir: Path, device: Any) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.device = device
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).to(device).eval()
        self.busy_s: list[float] = []  # each request's time in `generate`: its utilization at a rate

    def generate(self, job: Job, request: Request) -> None:
        import torch
        from transformers.generation.streamers import BaseStreamer

        class Stamps(BaseStreamer):
            prompt = True

            def put(self, value: Any) -> None:
                if self.prompt:  # `generate` hands the streamer the prompt first
                    self.prompt = False
                else:
                    request.stamps.append(time.perf_counter())

            def end(self) -> None:
                pass

        ids, max_tokens = job
        eos = self.tokenizer.eos_token_id
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=torch.tensor([ids], device=self.device),
                attention_mask=torch.ones((1, len(ids)), dtype=torch.long, device=self.device),
                max_new_tokens=max_tokens,
                do_sample=False,
                pad_token_id=self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else eos,
                streamer=Stamps(),
            )
        request.tokens = out[0, len(ids) :].tolist()
        if request.tokens and request.tokens[-1] == eos:  # the service does not count the end of sequence
            request.tokens.pop()
            request.stamps.pop()

    def open_loop(self, jobs: list[Job], offsets: list[float]) -> list[Request]:
        """The same trace, answered FIFO: each request starts at its arrival or when the one before it ends."""
        start = time.perf_counter() + LEAD_S
        requests = []
        for job, offset in zip(jobs, offsets, strict=True):
            request = Request(start + offset)
            delay = request.arrival - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            began = time.perf_counter()
            self.generate(job, request)
            self.busy_s.append(time.perf_counter() - began)
            requests.append(request)
        return requests


def prepare_model(choice: str, scratch: Path) -> tuple[Path, str]:
    """(directory, label) of --model: the bundled SmolLM2 GGUF converted, the tests' tiny Llama, or a directory."""
    if choice == "smollm2":
        from modelops_trainer.gguf_import import convert, smollm2

        convert(smollm2().path, scratch / "smollm2")
        return scratch / "smollm2", "SmolLM2-135M-Instruct"
    if choice == "tiny":
        from modelops_trainer.base_model import build_base_model

        build_base_model(scratch / "tiny", 0)
        return scratch / "tiny", "tiny Llama (7.5M)"
    return Path(choice), Path(choice).name


def _row(rate: str, side: str, cells: list[str]) -> None:
    print(f"  {rate:>6} {side:9} " + " ".join(f"{cell:>{width}}" for cell, width in zip(cells, WIDTHS, strict=True)))


async def bench(model_dir: Path, label: str, args: argparse.Namespace) -> None:
    from modelops_inference.backend import TransformersBackend, pick_device

    began = time.perf_counter()
    device = pick_device(args.device)
    backend = await TransformersBackend.load("base", model_dir, device, max_adapters=1)
    served = Served(backend)
    baseline = SequentialGenerate(model_dir, device)
    tokenize = backend.tokenizer
    jobs: list[Job] = [(tokenize(prompt)["input_ids"], tokens) for prompt, _, tokens in mixed_jobs(args.requests)]
    try:
        await served.open_loop(jobs[:2], [0.0, 0.0])  # first kernels on both sides
        # On the model thread too: torch's intra-op pool, driven from two threads in turn, slows both.
        await backend.run(functools.partial(baseline.open_loop, jobs[:1], [0.0]))
        capacity: tuple[float, float] | None = None  # tokens/s, requests/s
        if args.rates:
            rates = sorted(float(rate) for rate in args.rates.split(","))
        else:
            capacity = await served.capacity(jobs, args.capacity_s)
            rates = [capacity[1] * fraction for fraction in FRACTIONS]
        with_baseline = {"all": rates, "lowest": rates[:1], "none": []}[args.baseline]
        ours: dict[float, list[dict[str, float]]] = {rate: [] for rate in rates}
        theirs: dict[float, list[dict[str, float]]] = {rate: [] for rate in with_baseline}
        differing = compared = 0
        for repeat in range(args.repeats):
            for rate in rates:
                offsets = arrivals(len(jobs), rate, seed=repeat)
                our_run = await served.open_loop(jobs, offsets)
                ours[rate].append(figures(our_run))
                if rate in theirs:
                    their_run = await backend.run(functools.partial(baseline.open_loop, jobs, offsets))
                    theirs[rate].append(figures(their_run))
                    differing += sum(a.tokens != b.tokens for a, b in zip(our_run, their_run, strict=True))
                    compared += len(jobs)
    finally:
        await served.close()

    tokens = [len(r.tokens) for r in our_run]
    print(
        f"latency: {label}, base model, greedy, {device.type}; {args.requests} requests a run (prompts of 1-8"
        f" sentences, {min(tokens)}-{max(tokens)} tokens generated), open-loop Poisson arrivals, up to {BATCH} in a"
        f" batch; medians of {args.repeats} runs (min-max), latencies in ms"
    )
    if capacity is not None:
        shares = ", ".join(f"{fraction:.0%}" for fraction in FRACTIONS)
        print(
            f"  capacity, closed loop with {BATCH} in flight for {args.capacity_s:.0f} s: {capacity[0]:.0f} tokens/s,"
            f" {capacity[1]:.2f} req/s of this workload; rates at {shares} of it"
        )
    _row("req/s", "side", ["TTFT p50", "TTFT p99", "ITL p50", "ITL p99", "tokens/s"])
    for rate in rates:
        sides = [("ours", ours[rate])] + ([("generate", theirs[rate])] if rate in theirs else [])
        for i, (side, runs) in enumerate(sides):
            cells = [spread([run[name] for run in runs]) for name in FIGURES]
            shown = f"{rate:6.2f}" if i == 0 else ""
            _row(shown, side, cells)
    service_s = baseline.busy_s[1:]  # not the warm-up
    if service_s:
        busy = statistics.mean(service_s)
        print(f"  generate: {busy * 1000:.0f} ms a request (mean), so its capacity is {1 / busy:.2f} req/s")

    def median(runs: list[dict[str, float]], name: str) -> float:
        return statistics.median(run[name] for run in runs)

    for rate in theirs:
        ttft = median(theirs[rate], "ttft_p50") / median(ours[rate], "ttft_p50")
        itl = median(theirs[rate], "itl_p50") / median(ours[rate], "itl_p50")
        load = f", generate's load {rate * statistics.mean(service_s):.0%}" if service_s else ""
        print(f"  ratio generate / ours at {rate:.2f} req/s{load}: p50 TTFT {ttft:.2f}×, p50 ITL {itl:.2f}×")
        if service_s and rate * statistics.mean(service_s) >= 1:
            print("    (past generate's capacity: its queue grows all run, so its TTFT grows with --requests)")
    if args.baseline == "lowest" and len(rates) > 1:
        print("  generate runs at the lowest rate only (--baseline all for every rate)")
    if compared:
        print(f"  completions differing from generate's (token ids): {differing} of {compared}")
    print(f"  wall time {time.perf_counter() - began:.0f} s (model load included, conversion not)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=24, help="requests a run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rates", help="comma-separated requests/s (default: 25%%, 50%%, 80%% of measured capacity)")
    parser.add_argument("--baseline", choices=("all", "lowest", "none"), default="lowest", help="rates generate runs")
    parser.add_argument("--capacity-s", type=float, default=15, help="closed-loop window that measures capacity")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto")
    parser.add_argument("--model", default="smollm2", help="smollm2 (the bundled GGUF), tiny, or a model directory")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as scratch:
        model_dir, label = prepare_model(args.model, Path(scratch))
        asyncio.run(bench(model_dir, label, args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
