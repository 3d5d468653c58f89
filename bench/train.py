"""Trainer throughput: our trainer (packed rows, prompt-masked loss) against a plain Hugging Face Trainer + PEFT
recipe (one row per example, padded to the batch's longest), on the same tiny Llama, data, LoRA, batch size and
steps, measured in the same run. Each side trains in its own subprocess, so its peak RSS (getrusage) is its own.

Tokens/s counts real (non-padding) tokens only, over the training loop (model loading and saving excluded).

    python bench/train.py [--steps 30] [--batch-size 8] [--seq-len 256]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROWS = 2000


def rows(seed: int = 0) -> list[dict[str, str]]:
    """sft rows of widely varying length (roughly 20 to 250 tokens), as real instruction data has."""
    from modelops_trainer.corpus import sentences

    text = list(sentences(seed, count=6 * ROWS))
    rng = random.Random(seed)
    return [
        {
            "prompt": " ".join(rng.sample(text, rng.randint(1, 6))),
            "completion": " " + " ".join(rng.sample(text, rng.randint(1, 3))),
        }
        for _ in range(ROWS)
    ]


def ours(base: Path, args: argparse.Namespace, out: Path) -> dict[str, float]:
    from modelops_contracts import AdapterSpec, Hyperparameters
    from modelops_trainer import engine

    class Hooks:
        last: Any = None

        def started(self, total_steps: int, resumed_from_step: int) -> None:
            pass

        def progressed(self, progress: Any) -> None:
            self.last = progress

        def checkpointed(self, step: int, directory: Path) -> None:
            pass

        def stop_reason(self) -> str | None:
            return None

    hooks = Hooks()
    plan = engine.Plan(
        method="sft",
        schema="sft",
        base_model=base,
        rows=rows(),
        hyperparameters=Hyperparameters(max_steps=args.steps, batch_size=args.batch_size, seq_len=args.seq_len),
        adapter=AdapterSpec(),
        quantization="none",
        eval_split=0.0,
        output_dir=out,
        checkpoint_every=10 * args.steps,
        progress_every_steps=args.steps,
        progress_every_s=1e9,
    )
    engine.run(plan, hooks)
    return {"tokens_per_second": hooks.last.tokens_per_second}


def baseline(base: Path, args: argparse.Namespace, out: Path) -> dict[str, float]:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        DataCollatorForLanguageModeling,
        Trainer,
        TrainerCallback,
        TrainingArguments,
        set_seed,
    )

    set_seed(42)
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(base, attn_implementation="sdpa"),
        LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM"),
    )
    examples = [
        tokenizer(row["prompt"] + row["completion"] + tokenizer.eos_token, truncation=True, max_length=args.seq_len)
        for row in rows()
    ]
    pad = DataCollatorForLanguageModeling(tokenizer, mlm=False)
    counted = {"tokens": 0}

    def collate(batch: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        tensors: dict[str, torch.Tensor] = pad(batch)
        counted["tokens"] += int(tensors["attention_mask"].sum())
        return tensors

    class Clock(TrainerCallback):
        def on_train_begin(self, *_: Any, **__: Any) -> None:
            self.began, self.tokens_then = time.monotonic(), counted["tokens"]

        def on_train_end(self, *_: Any, **__: Any) -> None:
            self.seconds = time.monotonic() - self.began

    clock = Clock()
    Trainer(
        model=model,
        args=TrainingArguments(
            output_dir=str(out),
            max_steps=args.steps,
            per_device_train_batch_size=args.batch_size,
            learning_rate=2e-4,
            logging_steps=1,
            save_strategy="no",
            report_to=[],
            disable_tqdm=True,
            use_cpu=True,
            seed=42,
            dataloader_num_workers=0,
        ),
        train_dataset=examples,
        data_collator=collate,
        callbacks=[clock],
    ).train()
    return {"tokens_per_second": (counted["tokens"] - clock.tokens_then) / clock.seconds}


def side(name: str, base: Path, args: argparse.Namespace) -> dict[str, float]:
    """Run one side in a fresh interpreter; its figures plus its peak RSS."""
    command = [sys.executable, __file__, "--side", name, "--base", str(base)]
    command += ["--steps", str(args.steps), "--batch-size", str(args.batch_size), "--seq-len", str(args.seq_len)]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--side", choices=["ours", "baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--base", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        with tempfile.TemporaryDirectory() as out:
            figures = (ours if args.side == "ours" else baseline)(args.base, args, Path(out))
        figures["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(figures))
        return 0

    from modelops_trainer.base_model import build_base_model

    with tempfile.TemporaryDirectory() as scratch:
        base = Path(scratch)
        build_base_model(base, seed=0)
        results = {name: side(name, base, args) for name in ("baseline", "ours")}
    print(f"trainer: tiny Llama (7.5M), LoRA r=16 all-linear, {args.steps} steps × batch {args.batch_size}, CPU")
    for name, figures in results.items():
        print(f"  {name:9} {figures['tokens_per_second']:9.0f} tokens/s   peak RSS {figures['peak_rss_mb']:6.0f} MB")
    ratio = results["ours"]["tokens_per_second"] / results["baseline"]["tokens_per_second"]
    memory = results["ours"]["peak_rss_mb"] / results["baseline"]["peak_rss_mb"]
    print(f"  ratio     {ratio:.2f}× tokens/s (target ≥ 1.3×), {memory:.2f}× peak RSS")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
