"""Data-parallel training on this machine: tokens/s of a 2-rank job (torch.distributed, gloo, one core each: what
`resources: {workers: 2}` runs) against the same job in 1 process (both cores to PyTorch's intra-op threads, what
a user runs without DDP), at the same global batch (2 × 4 rows against 1 × 8), LoRA on SmolLM2-135M-Instruct.
Tokens/s is the trainer's own figure over the training loop (rank 0's tokens × ranks for DDP); wall time includes
starting the processes and loading the model. Medians of --repeats.

    python bench/distributed.py [--steps 8] [--seq-len 128] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from train import LastProgress

ROWS = 1200


def one_run(base: Path, out: Path, args: argparse.Namespace, ranks: int) -> tuple[float, float]:
    """(tokens/s over the training loop, wall seconds) of one job."""
    from modelops_contracts import AdapterSpec, Hyperparameters
    from modelops_trainer import distributed, engine
    from modelops_trainer.corpus import sentences

    text = list(sentences(0, count=ROWS))
    rows = [{"prompt": line, "completion": " " + text[(i + 1) % len(text)]} for i, line in enumerate(text)]
    plan = engine.Plan(
        method="sft",
        schema="sft",
        base_model=base,
        rows=rows,
        hyperparameters=Hyperparameters(max_steps=args.steps, batch_size=8 // ranks, seq_len=args.seq_len, seed=7),
        adapter=AdapterSpec(),
        quantization="none",
        eval_split=0.0,
        output_dir=out,
        checkpoint_every=10 * args.steps,
        progress_every_steps=args.steps,
        progress_every_s=1e9,
        ranks=ranks,
    )
    hooks = LastProgress()
    began = time.perf_counter()
    (distributed.launch if ranks > 1 else engine.run)(plan, hooks)
    return hooks.last.tokens_per_second, time.perf_counter() - began


def main(args: argparse.Namespace) -> None:
    from modelops_trainer.gguf_import import convert, smollm2

    with tempfile.TemporaryDirectory(prefix="bench-ddp-") as scratch:
        base = Path(scratch) / "smollm2"
        convert(smollm2().path, base)
        runs: dict[int, list[tuple[float, float]]] = {1: [], 2: []}
        for repeat in range(args.repeats):
            for ranks in (1, 2):
                runs[ranks].append(one_run(base, Path(scratch) / f"run-{ranks}-{repeat}", args, ranks))
    rate = {ranks: statistics.median(r[0] for r in found) for ranks, found in runs.items()}
    wall = {ranks: statistics.median(r[1] for r in found) for ranks, found in runs.items()}
    spread = {ranks: (min(r[0] for r in found), max(r[0] for r in found)) for ranks, found in runs.items()}
    print(f"distributed training benchmark: LoRA on SmolLM2-135M-Instruct, {args.steps} steps of 8 × {args.seq_len}")
    print(f"tokens, medians of {args.repeats} runs (min-max)")
    for ranks, label in ((1, "baseline, 1 process (2 intra-op threads)"), (2, "DDP, 2 ranks (gloo, 1 thread each)")):
        low, high = spread[ranks]
        print(f"  {label:42s} {rate[ranks]:8.0f} tokens/s ({low:.0f}-{high:.0f}), wall {wall[ranks]:6.1f} s")
    print(f"  ratio DDP / 1 process (tokens/s):          {rate[2] / rate[1]:8.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    main(parser.parse_args())
